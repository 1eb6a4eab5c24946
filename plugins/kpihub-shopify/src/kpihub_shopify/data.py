"""The fake shop's data: seeded orders with refunds, customers and the shop, in Shopify's wire shape.

Every change (a refund, a payment, a new order, an edited customer) moves the changed objects'
``updatedAt`` to the shop's clock, which only goes forward, as Shopify's does. A deleted order
just disappears: the Admin API keeps no tombstone of it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from decimal import Decimal
from typing import Any

UTC = dt.timezone.utc
CENT = Decimal("0.01")
_FILTER = re.compile(r"(\w+):(>=|<=|>|<)?\s*'?\"?([^'\" ]+)'?\"?")


def iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal_string(amount: Decimal) -> str:
    """Shopify's Decimal: a string with the cents that matter, "199.0", "24.95"."""
    text = f"{amount.quantize(CENT):f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def bag(amount: Decimal, currency: str) -> dict[str, Any]:
    """A MoneyBag; this shop sells in one currency, so presentment money equals shop money."""
    money = {"amount": decimal_string(amount), "currencyCode": currency}
    return {"shopMoney": money, "presentmentMoney": dict(money)}


class ShopifyData:
    """A shop's orders, refunds and customers (``orders``, ``customers``: GID → node)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        orders: int = 300,
        customers: int = 120,
        currency: str = "SEK",
        time_zone: str = "Europe/Stockholm",
        start: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=UTC),
        days: int = 150,
        email: Any = None,
        vat: Decimal = Decimal("0.25"),
        name: str = "Norrsken Goods",
        domain: str = "norrsken-goods.myshopify.com",
        totals: tuple[int, int] = (99, 2_500),
    ) -> None:
        self.rng = random.Random(seed)
        self.currency = currency
        #: An order's total is drawn from this range (whole currency units, cents drawn too).
        self.totals = totals
        #: Prices include VAT at this rate (Swedish standard VAT): an order's tax is price × vat ÷ (1 + vat).
        self.vat = vat
        self.shop = {
            "id": "gid://shopify/Shop/5550001",
            "name": name,
            "myshopifyDomain": domain,
            "currencyCode": currency,
            "ianaTimezone": time_zone,
        }
        self.orders: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self._ids = {"Order": 4500, "Refund": 9000, "Customer": 7000}
        self._email = email or (lambda i: f"buyer{i:05d}@norrsken.example")
        self.now = start
        for i in range(customers):
            self.now = start + dt.timedelta(days=self.rng.uniform(0, days / 2))
            self._customer(i)
        times = sorted(start + dt.timedelta(days=self.rng.uniform(0, days)) for _ in range(orders))
        for t in times:
            self.now = t
            self.new_order(status=self._status(), seeding=True)
        self.now = max([start, *(dt.datetime.fromisoformat(o["updatedAt"]) for o in self.orders.values())])
        self.now += dt.timedelta(hours=1)

    # -- building --------------------------------------------------------------------

    def _gid(self, kind: str) -> str:
        self._ids[kind] += 1
        return f"gid://shopify/{kind}/{self._ids[kind]}"

    def _customer(self, index: int) -> dict[str, Any]:
        gid = self._gid("Customer")
        node = {
            "id": gid,
            "createdAt": iso(self.now),
            "updatedAt": iso(self.now),
            "defaultEmailAddress": {"emailAddress": self._email(index)},
            "numberOfOrders": "0",
            "amountSpent": {"amount": "0.0", "currencyCode": self.currency},
        }
        self.customers[gid] = node
        return node

    def _status(self) -> str:
        r = self.rng.random()
        return "PENDING" if r < 0.05 else "VOIDED" if r < 0.08 else "TEST" if r < 0.11 else "PAID"

    def tick(self, seconds: float | None = None) -> dt.datetime:
        """Move the shop's clock on (1–9 s unless told) and return it."""
        self.now += dt.timedelta(seconds=seconds if seconds is not None else self.rng.randint(1, 9))
        return self.now

    def new_order(
        self,
        *,
        status: str = "PAID",
        customer: str | None = None,
        guest: bool = False,
        total: Decimal | None = None,
        tax: Decimal | None = None,
        seeding: bool = False,
    ) -> dict[str, Any]:
        """An order placed now; ``TEST`` makes a paid test order. Its tax is the VAT in ``total`` unless
        ``tax`` says it. While ``seeding`` the history, some paid ones are refunded (or cancelled) days later."""
        if customer is None and not guest and self.customers and self.rng.random() > 0.1:  # one in ten is a guest
            customer = self.rng.choice(sorted(self.customers))
        low, high = self.totals
        total = total if total is not None else Decimal(self.rng.randrange(low * 100, high * 100)) / 100
        tax = tax if tax is not None else (total * self.vat / (1 + self.vat)).quantize(CENT)
        gid = self._gid("Order")
        order: dict[str, Any] = {
            "id": gid,
            "name": f"#{self._ids['Order'] - 3500}",
            "createdAt": iso(self.now),
            "processedAt": iso(self.now),
            "updatedAt": iso(self.now),
            "cancelledAt": None,
            "cancelReason": None,
            "test": status == "TEST",
            "displayFinancialStatus": "PAID" if status == "TEST" else status,
            "customer": {"id": customer} if customer else None,
            "totalPriceSet": bag(total, self.currency),
            "totalReceivedSet": bag(total if status in ("PAID", "TEST") else Decimal(0), self.currency),
            "totalRefundedSet": bag(Decimal(0), self.currency),
            "totalTaxSet": bag(tax, self.currency),
            "refunds": [],
        }
        self.orders[gid] = order
        self._touch_customer(order)
        if seeding and status == "PAID" and self.rng.random() < 0.12:
            later = self.now
            self.now += dt.timedelta(days=self.rng.uniform(1, 20))
            self.refund(gid, cancel=self.rng.random() < 0.4)
            self.now = later
        return order

    # -- changes ---------------------------------------------------------------------

    def refund(self, order_id: str, amount: Decimal | None = None, *, cancel: bool = False) -> dict[str, Any]:
        """Refund ``amount`` (default: what is left, or a third of it) of a paid order, now."""
        order = self.orders[order_id]
        received = Decimal(order["totalReceivedSet"]["shopMoney"]["amount"])
        refunded = Decimal(order["totalRefundedSet"]["shopMoney"]["amount"])
        left = received - refunded
        if amount is None:
            amount = left if cancel or self.rng.random() < 0.5 else (left / 3).quantize(CENT)
        refund = {
            "id": self._gid("Refund"),
            "createdAt": iso(self.now),
            "updatedAt": iso(self.now),
            "totalRefundedSet": bag(amount, self.currency),
        }
        order["refunds"].append(refund)
        refunded += amount
        order["totalRefundedSet"] = bag(refunded, self.currency)
        order["displayFinancialStatus"] = "REFUNDED" if refunded >= received else "PARTIALLY_REFUNDED"
        if cancel:
            order["cancelledAt"], order["cancelReason"] = iso(self.now), "CUSTOMER"
        order["updatedAt"] = iso(self.now)
        self._touch_customer(order)
        return refund

    def pay(self, order_id: str) -> None:
        """A pending order is paid now."""
        order = self.orders[order_id]
        order["totalReceivedSet"] = bag(Decimal(order["totalPriceSet"]["shopMoney"]["amount"]), self.currency)
        order["displayFinancialStatus"] = "PAID"
        order["updatedAt"] = iso(self.now)
        self._touch_customer(order)

    def delete_order(self, order_id: str) -> None:
        """The merchant deletes an order: it is gone, with no tombstone."""
        order = self.orders.pop(order_id)
        self._touch_customer(order)

    def edit_customer(self, customer_id: str) -> None:
        node = self.customers[customer_id]
        node["defaultEmailAddress"] = {"emailAddress": f"changed-{customer_id.rsplit('/', 1)[-1]}@norrsken.example"}
        node["updatedAt"] = iso(self.now)

    def _touch_customer(self, order: dict[str, Any]) -> None:
        """Recount the buyer's orders and spend (Shopify keeps them on the customer), updated now."""
        gid = (order.get("customer") or {}).get("id")
        if gid not in self.customers:
            return
        mine = [o for o in self.orders.values() if (o["customer"] or {}).get("id") == gid and not o["test"]]
        spent = sum(
            (
                Decimal(o["totalReceivedSet"]["shopMoney"]["amount"])
                - Decimal(o["totalRefundedSet"]["shopMoney"]["amount"])
                for o in mine
            ),
            Decimal(0),
        )
        node = self.customers[gid]
        node["numberOfOrders"] = str(len(mine))
        node["amountSpent"] = {"amount": decimal_string(spent), "currencyCode": self.currency}
        node["updatedAt"] = iso(self.now)

    def paid_orders(self) -> list[str]:
        return sorted(g for g, o in self.orders.items() if o["displayFinancialStatus"] == "PAID" and not o["test"])

    def change_data(self) -> None:
        """Refunds of old orders, pending orders paid, new orders, edited customers: no deletions."""
        for gid in self.paid_orders()[:3]:
            self.tick()
            self.refund(gid)
        for gid in sorted(g for g, o in self.orders.items() if o["displayFinancialStatus"] == "PENDING")[:2]:
            self.tick()
            self.pay(gid)
        for _ in range(4):
            self.tick()
            self.new_order()
        for gid in sorted(self.customers)[:2]:
            self.tick()
            self.edit_customer(gid)

    def random_change(self) -> None:
        """One change, as a shop's data changes while a sync pages through it."""
        self.tick()
        kind = self.rng.choice(("refund", "pay", "new", "delete", "customer"))
        paid = self.paid_orders()
        if kind == "refund" and paid:
            self.refund(self.rng.choice(paid))
        elif kind == "pay":
            pending = sorted(g for g, o in self.orders.items() if o["displayFinancialStatus"] == "PENDING")
            if pending:
                self.pay(self.rng.choice(pending))
        elif kind == "delete" and paid:
            self.delete_order(self.rng.choice(paid))
        elif kind == "customer" and self.customers:
            self.edit_customer(self.rng.choice(sorted(self.customers)))
        else:
            self.new_order()

    # -- search ----------------------------------------------------------------------

    def search(self, connection: str, query: Any) -> list[dict[str, Any]]:
        """The nodes of ``orders`` or ``customers`` matching a search ``query`` on ``updated_at`` /
        ``created_at`` (``>=``, ``>``, ``<=``, ``<``, joined by AND); other terms are not filtered on."""
        items = list((self.orders if connection == "orders" else self.customers).values())
        for name, op, value in _FILTER.findall(str(query or "")):
            fieldname = {"updated_at": "updatedAt", "created_at": "createdAt"}.get(name)
            if fieldname is None or not op:
                continue
            bound = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if bound.tzinfo is None:
                bound = bound.replace(tzinfo=UTC)
            items = [o for o in items if _compare(dt.datetime.fromisoformat(o[fieldname]), op, bound)]
        return items


def _compare(a: dt.datetime, op: str, b: dt.datetime) -> bool:
    return {">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b}[op]
