"""``python -m tests.plugins.toy_cli ARGS``: the ``kpihub`` command with the toy source registered,
as an installed plugin would be (child processes of the crash-safety tests)."""

from __future__ import annotations

from kpihub.cli import main
from kpihub.plugins import Registry, reset_registry
from tests.plugins import toy

if __name__ == "__main__":
    registry = Registry(load_entrypoints=False)  # only the toy: no time spent importing installed plugins
    registry.register_plugin(toy, "toy")
    reset_registry(registry)
    main()
