"""kpihub-shopify: the Shopify Admin GraphQL connector for kpihub (public API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_shopify.source import ShopifySettings, ShopifySource

__all__ = ["ShopifySettings", "ShopifySource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(ShopifySource())
