"""Stripe raw batches -> canonical ``orders`` and ``subscriptions``, column-wise.

Rules (also in the plugin README):

* Amounts are minor-unit integers converted by each row's currency exponent:
  zero-decimal currencies (JPY, KRW, …) stay whole, three-decimal ones (KWD,
  BHD, …) are divided by 1,000, the rest by 100 (kpihub_stripe.currencies).
* A charge is an order row (``kind = "charge"``) on its ``created`` date:
  gross = ``amount_captured``; net = gross for ``status = "succeeded"``, else 0.
* A refund is its own row (``kind = "refund"``) on the refund's date, so a
  refund lowers revenue when it happens, not retroactively: refunded =
  ``amount``, net = −amount when the refund succeeded; ``parent_order_id`` is
  the charge.
* Currency codes are upper-cased (Stripe sends ``"usd"``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from kpihub_stripe.currencies import MONEY, to_major

ZERO = pa.scalar(0, MONEY)


def charges_to_orders(batch: pa.RecordBatch) -> pa.RecordBatch:
    n = batch.num_rows
    gross = to_major(batch.column("amount_captured"), batch.column("currency"))
    succeeded = pc.fill_null(pc.equal(batch.column("status"), "succeeded"), False)
    return pa.RecordBatch.from_pydict(
        {
            "order_id": batch.column("id"),
            "kind": pa.repeat(pa.scalar("charge"), n),
            "parent_order_id": pa.nulls(n, pa.string()),
            "customer_id": batch.column("customer"),
            "ordered_at": batch.column("created"),
            "status": batch.column("status"),
            "gross_amount": gross,
            "refunded_amount": pa.repeat(ZERO, n),
            "net_amount": pc.if_else(succeeded, gross, ZERO),
            "currency": pc.utf8_upper(batch.column("currency")),
        }
    )


def refunds_to_orders(batch: pa.RecordBatch) -> pa.RecordBatch:
    n = batch.num_rows
    refunded = to_major(batch.column("amount"), batch.column("currency"))
    succeeded = pc.fill_null(pc.equal(batch.column("status"), "succeeded"), False)
    return pa.RecordBatch.from_pydict(
        {
            "order_id": batch.column("id"),
            "kind": pa.repeat(pa.scalar("refund"), n),
            "parent_order_id": batch.column("charge"),
            "customer_id": pa.nulls(n, pa.string()),
            "ordered_at": batch.column("created"),
            "status": batch.column("status"),
            "gross_amount": pa.repeat(ZERO, n),
            "refunded_amount": refunded,
            "net_amount": pc.if_else(succeeded, pc.negate(refunded), ZERO),
            "currency": pc.utf8_upper(batch.column("currency")),
        }
    )


def subscriptions(batch: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "subscription_id": batch.column("id"),
            "customer_id": batch.column("customer"),
            "status": batch.column("status"),
            "started_at": batch.column("start_date"),
            "canceled_at": batch.column("canceled_at"),
            "ended_at": batch.column("ended_at"),
            "mrr": batch.column("mrr"),
            "currency": pc.utf8_upper(batch.column("currency")),
        }
    )
