"""The Vega, Vega-Lite and vega-embed JavaScript for a report that opens with no network.

``vl_convert.javascript_bundle()`` (vl-convert-python bundles Vega; no download) returns one
self-contained script (~900 kB) that sets ``window.vegaEmbed``. Building it takes 4-6 s, so it is
cached on disk per vl-convert and Vega-Lite version (``KPIHUB_CACHE_DIR``, else the user cache
directory) and in memory per process. It declares top-level names, so a page must load it as
``<script type="module">`` (module scope) or its names clash with the page's own.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "javascript_bundle"]


def cache_dir() -> Path:
    """``$KPIHUB_CACHE_DIR``, else ``$XDG_CACHE_HOME/kpihub``, else ``~/.cache/kpihub``."""
    if os.environ.get("KPIHUB_CACHE_DIR"):
        return Path(os.environ["KPIHUB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kpihub"


@functools.lru_cache(maxsize=1)
def javascript_bundle() -> str:
    """The bundle (vega-embed with Vega and Vega-Lite, every dependency inlined), from the cache when there."""
    import vl_convert as vlc

    # vl_convert's stubs lack __version__ and type snippet as required; both work at run time.
    versions = f"{vlc.__version__}-vl{vlc.get_vegalite_versions()[-1]}-embed{vlc.get_vega_embed_version()}"  # type: ignore[attr-defined]
    path = cache_dir() / f"vega-bundle-{versions}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = vlc.javascript_bundle()  # type: ignore[call-arg]
    try:  # written whole or not at all: a half-written bundle would break every later report
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the report still works, it only builds the bundle again next time
    return text
