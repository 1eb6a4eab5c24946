"""Destinations: where synced tables and their state go."""

from kpihub.destinations.base import Destination, DestinationSession, TableWrite, dedup_last

__all__ = ["Destination", "DestinationSession", "TableWrite", "dedup_last"]
