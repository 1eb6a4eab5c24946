"""``kpihub demo``: the demo business's web shop on Shopify, beside its Stripe billing.

Nordlys Outdoor sells gear in a Shopify shop (prices with Norway's 25 % VAT, which Shopify reports
as each order's ``totalTaxSet``) and bills memberships and B2B customers through Stripe; the two
are separate orders, so the demo's sales are their sum. The shop's customers are contacts of the
CRM too (the business's customer emails after Stripe's), and its first sync is a backfill: one
bulk operation per stream, then paging from the operation's start.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from kpihub import DemoSpec
from kpihub.testing import DEMO_BUSINESS
from kpihub_shopify.data import ShopifyData
from kpihub_shopify.fake import FakeShopify


def demo_spec(*, seed: int = 7, scale: int = 1) -> DemoSpec:
    """The shop over the demo business's dates: ~100 orders a month per ``scale``, 39-450 EUR each."""
    b = DEMO_BUSINESS
    start = dt.datetime.combine(b.start, dt.time(), ZoneInfo(b.time_zone))
    offset = b.billed_customers * scale  # Stripe bills the CRM's first customers
    data = ShopifyData(
        seed=seed,
        orders=1_800 * scale,
        customers=700 * scale,
        currency=b.currency,
        time_zone=b.time_zone,
        start=start,
        days=(b.end - b.start).days + 1,
        email=lambda i: b.customer_email(offset + i),
        vat=Decimal(str(b.vat_rate)),
        name="Nordlys Outdoor",
        domain="nordlys-outdoor.myshopify.com",
        totals=(39, 450),
    )
    # A Shopify Plus shop's bucket (20,000 points, 1,000 a second): the demo's pages do not wait.
    server = FakeShopify(seed=seed, data=data, bucket=(20_000.0, 1_000.0))
    settings = {"access_token": server.token, "bulk_poll_seconds": 0.05}
    return DemoSpec(server=server, settings=settings)
