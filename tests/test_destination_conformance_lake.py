"""kpihub.testing.DestinationConformance over the file lake in its other formats (CSV, JSON lines, Arrow IPC)
and in a fake S3 (moto). They share Parquet's commit code (test_destination_conformance.TestParquet), so
their crash tests kill at fewer steps."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.test_destination_conformance import TestParquet as _Parquet


class _Lake(_Parquet):
    max_kill_points = 6


class TestCSV(_Lake):
    def uri(self, path: Path) -> str:
        return f"csv:///{path}"


class TestJSONL(_Lake):
    def uri(self, path: Path) -> str:
        return f"jsonl:///{path}"


class TestArrowIPC(_Lake):
    def uri(self, path: Path) -> str:
        return f"arrow:///{path}"


class TestS3(_Lake):
    exclusive_writer = False  # an object store gives kpihub no lock: one sync per prefix (documented)
    max_kill_points = 5  # the commit's own failpoints: the local lake's file steps are killed at above
    format = ""

    @pytest.fixture(autouse=True)
    def _s3(self, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "kpihub-test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "kpihub-test-secret")
        self.s3 = s3_server

    def uri(self, path: Path) -> str:
        bucket = f"kpihub-{uuid.uuid4().hex[:12]}"
        return (
            f"s3://{bucket}/lake?endpoint_override={self.s3}&scheme=http&region=us-east-1"
            f"&allow_bucket_creation=true{self.format}"
        )


class TestS3JSONL(TestS3):
    format = "&format=jsonl"
