"""``python -m bench.kpihub_cli ARGS``: the ``kpihub`` command with the benchmark source registered,
as an installed plugin would be (the way tests/plugins/toy_cli.py does it for the toy)."""

from __future__ import annotations

from kpihub.cli import main
from kpihub.plugins import reset_registry

from bench.kpihub_source import registry

if __name__ == "__main__":
    reset_registry(registry())
    main()
