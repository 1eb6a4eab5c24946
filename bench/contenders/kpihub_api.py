"""kpihub's Python API: ``kpihub.sync(project_file, streams=[...])`` with the benchmark source.

``python -m bench.contenders.kpihub_api PROJECT_FILE STREAM``: the source is registered as an
installed plugin would be (only it: no time spent importing the other installed plugins).
"""

from __future__ import annotations

import sys

import kpihub
from kpihub.plugins import reset_registry

from bench.kpihub_source import registry


def main(project: str, stream: str) -> int:
    reset_registry(registry())
    result = kpihub.sync(project, streams=[stream])
    return int(result.records)


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
