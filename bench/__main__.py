"""``python -m bench``: the benchmark suite (see bench/suite.py and docs/performance.md)."""

import sys

from bench.suite import main

sys.exit(main())
