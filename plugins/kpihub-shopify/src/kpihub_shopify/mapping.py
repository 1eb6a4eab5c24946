"""Shopify raw batches -> canonical ``orders``, column-wise, with the Stripe source's semantics.

Rules (also in the plugin README):

* An order is a ``kind = "charge"`` row dated ``processedAt`` (``createdAt`` when missing;
  Shopify dates imported orders by ``processedAt``). Gross = net = ``totalReceivedSet`` (money
  received, before refunds: Stripe's ``amount_captured``), so a pending, authorized, voided or
  expired order counts for nothing and a partly paid one for what was paid. Status is
  ``succeeded`` when money was received, else the financial status in lower case.
* A cancelled order keeps its row as it was paid: cancelling refunds the money, and the refund is
  its own row on its own date, so a period already reported does not change afterwards.
* A refund is a ``kind = "refund"`` row on the refund's ``createdAt``: refunded = its
  ``totalRefundedSet``, net = −that; ``parent_order_id`` is the order, ``customer_id`` its buyer.
* ``tax_amount`` is the tax inside ``net_amount`` (docs/kpis.md, "VAT and ROAS net"): the order's
  ``totalTaxSet`` once the order is paid in full, 0 when nothing was received, and null for a
  partly paid order (Shopify reports the order's tax, not the part of a payment that is tax: the
  ``vat_rate`` estimate takes over there, as for sources without tax). A refund row's is null: a
  Refund has no tax total of its own (it is spread over its refundLineItems, refundShippingLines
  and orderAdjustments connections), so ``sales_tax_not_reported`` holds refunds and
  ``[project] vat_rate`` takes their VAT out.
* Amounts are the shop's currency (``shopMoney``), already decimal strings in major units.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

MONEY = pa.decimal128(38, 9)
ZERO = pa.scalar(0, MONEY)


def _tax(batch: pa.RecordBatch, received: pa.Array) -> pa.Array:
    """The tax inside what was received (module docstring): all of it, none of it, or unknown."""
    price = pc.fill_null(batch.column("total_price"), ZERO)
    in_full = pc.if_else(pc.greater_equal(received, price), batch.column("total_tax"), pa.scalar(None, MONEY))
    return pc.if_else(pc.equal(received, ZERO), ZERO, in_full)


def partly_paid(batch: pa.RecordBatch) -> int:
    """Orders with some but not all of their price received (their ``tax_amount`` is null)."""
    received = pc.fill_null(batch.column("total_received"), ZERO)
    price = pc.fill_null(batch.column("total_price"), ZERO)
    return int(pc.sum(pc.and_(pc.greater(received, ZERO), pc.less(received, price))).as_py() or 0)


def orders_to_orders(batch: pa.RecordBatch) -> pa.RecordBatch:
    n = batch.num_rows
    received = pc.fill_null(batch.column("total_received"), ZERO)
    paid = pc.greater(received, ZERO)
    status = pc.if_else(paid, pa.scalar("succeeded"), pc.utf8_lower(batch.column("financial_status")))
    return pa.RecordBatch.from_pydict(
        {
            "order_id": batch.column("id"),
            "kind": pa.repeat(pa.scalar("charge"), n),
            "parent_order_id": pa.nulls(n, pa.string()),
            "customer_id": batch.column("customer_id"),
            "ordered_at": pc.coalesce(batch.column("processed_at"), batch.column("created_at")),
            "status": status,
            "gross_amount": received,
            "refunded_amount": pa.repeat(ZERO, n),
            "net_amount": received,
            "tax_amount": _tax(batch, received),
            "currency": pc.utf8_upper(batch.column("currency")),
        }
    )


def refunds_to_orders(batch: pa.RecordBatch) -> pa.RecordBatch:
    n = batch.num_rows
    refunded = pc.fill_null(batch.column("amount"), ZERO)
    return pa.RecordBatch.from_pydict(
        {
            "order_id": batch.column("id"),
            "kind": pa.repeat(pa.scalar("refund"), n),
            "parent_order_id": batch.column("order_id"),
            "customer_id": batch.column("customer_id"),
            "ordered_at": batch.column("created_at"),
            "status": pa.repeat(pa.scalar("succeeded"), n),
            "gross_amount": pa.repeat(ZERO, n),
            "refunded_amount": refunded,
            "net_amount": pc.negate(refunded),
            "currency": pc.utf8_upper(batch.column("currency")),
        }
    )
