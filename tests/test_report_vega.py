"""The inlined chart JavaScript: self-contained, and built once then read from the cache."""

from __future__ import annotations

import re

from kpihub.report import vega


def test_bundle_is_self_contained_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KPIHUB_CACHE_DIR", str(tmp_path))
    vega.javascript_bundle.cache_clear()
    text = vega.javascript_bundle()
    assert "window.vegaEmbed=" in text
    assert not re.search(r"^\s*(import|export)\s", text, re.M)  # nothing to load: no ES module imports
    (cached,) = tmp_path.glob("vega-bundle-*.js")
    assert cached.read_text(encoding="utf-8") == text
    cached.write_text("window.vegaEmbed = 1;", encoding="utf-8")
    vega.javascript_bundle.cache_clear()
    assert vega.javascript_bundle() == "window.vegaEmbed = 1;"  # read back, not rebuilt
    vega.javascript_bundle.cache_clear()
