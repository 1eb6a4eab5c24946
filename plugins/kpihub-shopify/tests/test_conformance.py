"""The Shopify connector through kpihub's conformance suite, against the fake on 127.0.0.1."""

from __future__ import annotations

from kpihub_shopify import ShopifySource
from kpihub_shopify.fake import FakeShopify

from kpihub.testing.conformance import SourceConformance

#: A bucket big enough that the suite's syncs are never throttled (tests/test_throttling.py is).
ROOMY = (100_000.0, 10_000.0)


class TestShopifyConformance(SourceConformance[FakeShopify]):
    source = ShopifySource()

    def make_server(self) -> FakeShopify:
        return FakeShopify(seed=5, orders=260, customers=90, bucket=ROOMY)

    def settings(self, server: FakeShopify) -> dict:
        # A first sync is a bulk operation (no cursor); the fake's 2026 data is months older than the
        # test machine's clock, so bulk_after_days keeps later syncs paged.
        return {
            "base_url": server.url,
            "access_token": server.token,
            "page_size": 50,
            "bulk_poll_seconds": 0.01,
            "bulk_after_days": 36_500,
        }

    def fault_settings(self, server: FakeShopify) -> dict:
        return {**self.settings(server), "page_size": 20}

    def change_data(self, server: FakeShopify) -> None:
        server.data.change_data()  # refunds of old orders, pending ones paid, new orders, edited customers

    def live_changes(self, server: FakeShopify):
        # Between pages: a refund, a payment, a new order, a deleted order or an edited customer.
        return server.live_changes()
