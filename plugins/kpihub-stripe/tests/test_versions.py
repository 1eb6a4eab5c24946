"""``kpihub doctor``'s verdict on ``stripe_version`` (Stripe's release names and dates), on a fixed day."""

from __future__ import annotations

import datetime as dt

import pytest
from kpihub_stripe.versions import release_of, version_finding


def test_each_date_belongs_to_the_release_then_current():
    assert release_of(dt.date(2024, 9, 29)) is None
    assert release_of(dt.date(2024, 12, 18)) == "acacia"
    assert release_of(dt.date(2025, 8, 27)) == "basil"
    assert release_of(dt.date(2025, 9, 30)) == "clover"
    assert release_of(dt.date(2026, 4, 22)) == "dahlia"


@pytest.mark.parametrize(
    ("version", "level", "start"),
    [
        ("2025-03-31.basil", "ok", "stripe_version 2025-03-31.basil is the release the streams are written for"),
        ("2025-08-27.basil", "ok", "stripe_version 2025-08-27.basil is the release"),
        ("2024-06-20", "ok", "stripe_version 2024-06-20 predates basil"),
        ("2024-12-18.acacia", "ok", "stripe_version 2024-12-18.acacia predates basil"),
        ("2025-10-29.clover", "warn", "stripe_version 2025-10-29.clover is newer than the basil shapes"),
        ("2025-05-28.preview", "warn", "stripe_version 2025-05-28.preview is a preview version"),
        ("2024-12-18", "warn", "stripe_version 2024-12-18 lacks the name of its release: write 2024-12-18.acacia"),
        ("2025-03-31.acacia", "error", "stripe_version 2025-03-31.acacia: a version of 2025-03-31 belongs to basil"),
        ("2024-06-20.acacia", "error", "stripe_version 2024-06-20.acacia: versions before 2024-09-30.acacia carry"),
        ("2025-02-30.basil", "error", "stripe_version '2025-02-30.basil' is not a Stripe API version"),
        ("2027-01-28.dahlia", "error", "stripe_version 2027-01-28.dahlia is dated after today (2026-06-01)"),
    ],
)
def test_version_verdicts(version, level, start):
    finding = version_finding(version, dt.date(2026, 6, 1))
    assert (finding.level, finding.message[: len(start)]) == (level, start)
