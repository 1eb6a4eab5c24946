"""$title against kpihub's destination conformance suite, and tests of your own beside it."""

from __future__ import annotations

from pathlib import Path

from kpihub import TableWrite
from kpihub.testing import Registry
from kpihub.testing.conformance import DestinationConformance
from kpihub.testing.destination_conformance import rows_table
from $package import ${cls}Destination


class Test${cls}Conformance(DestinationConformance):
    """Every test of kpihub.testing.conformance.DestinationConformance, on a directory under tmp_path."""

    destination = ${cls}Destination()

    def uri(self, path: Path) -> str:
        return f"$name:///{path}"


def test_the_next_writer_deletes_the_files_a_killed_commit_left(tmp_path: Path) -> None:
    uri = f"$name:///{tmp_path}"
    with ${cls}Destination().open(uri) as session:
        session.commit([TableWrite("t", rows_table(("a", "1", 1)), "append")], {"k": {"cursor": 1}})
    stray = tmp_path / "t.0123456789ab.jsonl"  # written, never listed: the commit was killed before its state
    stray.write_text('{"source_id": "a", "id": "2", "v": 2, "amount": "0.5"}\n')
    with ${cls}Destination().open(uri) as session:
        assert not stray.exists()
        assert [r["id"] for r in session.read_table("t").to_pylist()] == ["1"]
        assert session.get_state("k") == {"cursor": 1}


def test_the_installed_entry_point_registers_the_destination(tmp_path: Path) -> None:
    destination = Registry().destination_for(f"$name:///{tmp_path}")
    assert isinstance(destination, ${cls}Destination)
