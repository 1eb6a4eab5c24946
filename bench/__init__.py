"""kpihub's benchmarks: ``python -m bench`` runs the suite (docs/performance.md)."""
