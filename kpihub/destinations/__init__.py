"""Destinations: where synced tables and their state go."""

from kpihub.destinations.base import (
    Between,
    Destination,
    DestinationSession,
    TableWrite,
    dedup_last,
    is_staging,
    staging_name,
)

__all__ = ["Between", "Destination", "DestinationSession", "TableWrite", "dedup_last", "is_staging", "staging_name"]
