"""``python -m kpihub``: the ``kpihub`` command."""

from kpihub.cli import main

main()
