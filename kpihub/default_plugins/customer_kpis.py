"""Built-in customer-loyalty KPIs over ``orders``: new and returning buyers, activation.

An order is a *repeat order* when its customer had a succeeded charge before it (in the same
source: customer ids of two shops are not the same people), a *first order* otherwise. That is
decided per order, not per period, so a customer whose first and second purchase fall in one
month is new **and** returning in it — the shop platforms' sense ("a returning customer has
placed more than one order, one of them in the period"), and it keeps the revenue share additive:
a quarter's share is its months' repeat revenue over their revenue.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.default_plugins.revenue_kpis import PAID_CHARGE
from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure

#: A succeeded charge of the same customer and source placed before this order (ties in time broken
#: by order id, so two orders of one instant are one first and one repeat order).
_EARLIER = (
    "EXISTS (SELECT 1 FROM orders AS earlier WHERE earlier.source_id = orders.source_id "
    "AND earlier.customer_id = orders.customer_id AND earlier.kind = 'charge' AND earlier.status = 'succeeded' "
    "AND (earlier.ordered_at < orders.ordered_at "
    "OR (earlier.ordered_at = orders.ordered_at AND earlier.order_id < orders.order_id)))"
)
REPEAT_ORDER = f"{PAID_CHARGE} AND customer_id IS NOT NULL AND {_EARLIER}"
FIRST_ORDER = f"{PAID_CHARGE} AND customer_id IS NOT NULL AND NOT {_EARLIER}"


#: A customer is an id of one source: the same id in two shops is two customers.
CUSTOMER = "source_id || ':' || customer_id"


def _customers(condition: str) -> Measure:
    return Measure("orders", "count_distinct", "ordered_at", expr=CUSTOMER, filter=condition)


def _revenue(condition: str) -> Measure:
    return Measure("orders", "sum", "ordered_at", expr="net_amount", filter=condition, currency="currency")


PAYING = f"{PAID_CHARGE} AND customer_id IS NOT NULL"

CUSTOMER_KPIS = (
    KPI(
        id="repeat_purchase_rate",
        title="Repeat-purchase rate (customer loyalty)",
        description="Of the period's paying customers, the share who placed a repeat order in it (they had "
        "bought before, at any earlier time). Distinct customers of the period: a quarter's rate counts each "
        "customer once, not once per month.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_customers(REPEAT_ORDER),
        denominator=_customers(PAYING),
        stage="Nurture",
        reference=GUIDES + " (customer-loyalty rate); Shopify's returning customer rate",
    ),
    KPI(
        id="returning_revenue_share",
        title="Returning customers' revenue share",
        description="Σ net amount of repeat orders ÷ Σ net amount of succeeded charges in the period: the "
        "business that comes from customers who had bought before (refunds, rows of their own, on neither side).",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_revenue(REPEAT_ORDER),
        denominator=_revenue(PAID_CHARGE),
        stage="Nurture",
        reference=GUIDES + " (Nurture: business from returning customers)",
    ),
    KPI(
        id="customer_acquisition_rate",
        title="Customer acquisition rate",
        description="Of the period's paying customers, the share buying for the first time (their first "
        "succeeded charge falls in the period): new ÷ all the period's customers, from the orders. See "
        "customer_growth for new ÷ customers at the period's start (CRM).",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_customers(FIRST_ORDER),
        denominator=_customers(PAYING),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="activation_rate",
        title="Activation: second purchase within 90 days",
        description="Of the customers whose first purchase falls in the period, the share who buy again within "
        "90 days of it (a conversion window: periods less than 90 days old are still maturing).",
        unit="percent",
        direction="higher",
        kind="conversion",
        base=_customers(FIRST_ORDER),
        conversion=_customers(REPEAT_ORDER),
        window="90 days",
        stage="Nurture",
        reference=GUIDES,
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in CUSTOMER_KPIS:
        register(kpi)
