"""kpihub.testing.KPIConformance over the built-in KPI packs (kpihub/default_plugins/*_kpis.py): for each
pack, KPIs with a fixture small enough to check by hand, the arithmetic in the comments. Every fixture has
two months with different denominators, so Σ÷Σ over the quarter differs from the mean of the months."""

from __future__ import annotations

from kpihub.default_plugins import ads_kpis, crm_kpis, revenue_kpis, service_kpis, survey_kpis, web_kpis
from kpihub.testing.conformance import KPIConformance


def _ad_day(date: str, impressions: int, clicks: int, spend: int, value: int) -> dict:
    ids = {"platform": "google_ads", "account_id": "a1", "campaign_id": "c1", "ad_group_id": "g1", "ad_id": "ad1"}
    money = {"spend": spend, "conversion_value": value, "currency": "EUR"}
    return {"date": date, **ids, "impressions": impressions, "clicks": clicks, **money}


class TestAdsKPIs(KPIConformance):
    plugin = ads_kpis
    kpis = ("ctr", "cpc", "roas", "ad_spend")
    tables = {
        "ad_performance_daily": [
            _ad_day("2024-01-05", 1000, 10, 20, 60),
            _ad_day("2024-01-20", 3000, 50, 40, 100),
            _ad_day("2024-02-03", 1000, 40, 30, 30),
        ]
    }
    expected = {
        # Jan: (10 + 50) / (1000 + 3000) = 0.015; Feb: 40 / 1000 = 0.04 (Q1: 100 / 5000 = 0.02, mean 0.0275)
        "ctr": {"2024-01": 0.015, "2024-02": 0.04, "2024-03": None},
        # Jan: 60 EUR / 60 clicks = 1.0; Feb: 30 / 40 = 0.75 (Q1: 90 / 100 = 0.9, mean 0.875)
        "cpc": {"2024-01": 1.0, "2024-02": 0.75},
        # Jan: (60 + 100) / (20 + 40) = 2.6667; Feb: 30 / 30 = 1.0 (Q1: 190 / 90 = 2.1111, mean 1.8333)
        "roas": {"2024-01": 160 / 60, "2024-02": 1.0},
        # Jan: 20 + 40 = 60; Feb: 30; March: no rows, 0
        "ad_spend": {"2024-01": 60, "2024-02": 30, "2024-03": 0},
    }


class TestWebKPIs(KPIConformance):
    plugin = web_kpis
    kpis = ("bounce_rate", "traffic_to_lead")
    tables = {
        "web_traffic_daily": [
            {"date": d, "property_id": "p1", "source": s, "medium": "organic", "campaign": "(none)", **n}
            for d, s, n in [
                ("2024-01-10", "google", {"sessions": 100, "engaged_sessions": 60}),
                ("2024-01-11", "bing", {"sessions": 300, "engaged_sessions": 240}),
                ("2024-02-01", "google", {"sessions": 100, "engaged_sessions": 50}),
            ]
        ],
        # 8 leads in January, 1 in February (one contact never became a lead)
        "crm_contacts": [
            *({"contact_id": f"j{i}", "became_lead_at": f"2024-01-{i + 10}T09:00:00Z"} for i in range(8)),
            {"contact_id": "f1", "became_lead_at": "2024-02-29T23:30:00Z"},
            {"contact_id": "none", "created_at": "2024-01-02T00:00:00Z"},
        ],
    }
    expected = {
        # Jan: (40 + 60) / 400 = 0.25; Feb: 50 / 100 = 0.5 (Q1: 150 / 500 = 0.3, mean 0.375)
        "bounce_rate": {"2024-01": 0.25, "2024-02": 0.5},
        # Jan: 8 leads / 400 sessions = 0.02; Feb: 1 / 100 = 0.01 (Q1: 9 / 500 = 0.018, mean 0.015)
        "traffic_to_lead": {"2024-01": 0.02, "2024-02": 0.01},
    }


def _deal(deal_id: str, closed: str | None, won: bool, amount: int = 100) -> dict:
    return {
        "deal_id": deal_id,
        "created_at": "2023-12-01T12:00:00Z",
        "closed_at": closed,
        "is_closed": closed is not None,
        "is_won": won,
        "amount": amount,
        "currency": "EUR",
    }


class TestCRMKPIs(KPIConformance):
    plugin = crm_kpis
    kpis = ("win_rate", "avg_deal_size")
    tables = {
        "crm_deals": [
            _deal("d1", "2024-01-05T10:00:00Z", True, 1000),
            _deal("d2", "2024-01-06T10:00:00Z", False),
            _deal("d3", "2024-01-07T10:00:00Z", False),
            _deal("d4", "2024-01-31T23:59:59Z", False),
            _deal("d5", "2024-02-01T00:00:00Z", True, 500),
            _deal("d6", "2024-02-20T10:00:00Z", True, 2500),
            _deal("open", None, False),  # not closed: in neither side
        ]
    }
    expected = {
        # Jan: 1 won / 4 closed = 0.25; Feb: 2 / 2 = 1.0 (Q1: 3 / 6 = 0.5, mean 0.625)
        "win_rate": {"2024-01": 0.25, "2024-02": 1.0},
        # Jan: 1000 / 1; Feb: (500 + 2500) / 2 = 1500 (Q1: 4000 / 3 = 1333.33, mean 1250)
        "avg_deal_size": {"2024-01": 1000, "2024-02": 1500},
    }


def _order(order_id: str, at: str, *, kind: str = "charge", status: str = "succeeded", **amounts: int) -> dict:
    return {"order_id": order_id, "kind": kind, "status": status, "ordered_at": at, "currency": "EUR", **amounts}


def _subscription(sub_id: str, started: str, ended: str | None = None) -> dict:
    return {"subscription_id": sub_id, "started_at": f"{started}T08:00:00Z", "ended_at": ended and f"{ended}T08:00:00Z"}


class TestRevenueKPIs(KPIConformance):
    plugin = revenue_kpis
    kpis = ("aov", "sales", "churn_rate", "retention_rate")
    tables = {
        "orders": [
            _order("o1", "2024-01-05T10:00:00Z", gross_amount=100, net_amount=100, customer_id="c1"),
            _order("o2", "2024-01-15T10:00:00Z", gross_amount=50, net_amount=50, customer_id="c2"),
            _order("o3", "2024-01-20T10:00:00Z", status="failed", gross_amount=999, net_amount=0),
            _order("o4", "2024-02-02T10:00:00Z", gross_amount=300, net_amount=300, customer_id="c1"),
            _order("r1", "2024-02-10T10:00:00Z", kind="refund", refunded_amount=100, net_amount=-100),
        ],
        "subscriptions": [
            _subscription("s1", "2023-12-01"),
            _subscription("s2", "2023-12-15", "2024-01-20"),
            _subscription("s3", "2023-11-01", "2024-02-10"),
            _subscription("s4", "2024-01-10"),
            _subscription("s5", "2023-10-01"),
            _subscription("s6", "2023-12-20", "2024-02-25"),
        ],
    }
    expected = {
        # succeeded charges: Jan (100 + 50) / 2 = 75; Feb 300 / 1 = 300 (Q1: 450 / 3 = 150, mean 187.5)
        "aov": {"2024-01": 75, "2024-02": 300},
        # net: Jan 100 + 50 + 0 = 150; Feb 300 - 100 (the refund, dated when made) = 200
        "sales": {"2024-01": 150, "2024-02": 200},
        # active at 1 Jan: s1 s2 s3 s5 s6 = 5, ended in Jan: s2 -> 0.2;
        # active at 1 Feb: s1 s3 s4 s5 s6 = 5, ended in Feb: s3 s6 -> 0.4
        "churn_rate": {"2024-01": 0.2, "2024-02": 0.4},
        # derived: 1 - churn rate
        "retention_rate": {"2024-01": 0.8, "2024-02": 0.6},
    }


def _ticket(ticket_id: str, created: str, *, replies: int, reopens: int = 0, hours: float | None = None) -> dict:
    import datetime as dt

    at = dt.datetime.fromisoformat(created).replace(tzinfo=dt.timezone.utc)
    first = None if hours is None else (at + dt.timedelta(hours=hours)).isoformat()
    resolved = (at + dt.timedelta(hours=30)).isoformat()
    return {
        "ticket_id": ticket_id,
        "status": "solved",
        "created_at": at.isoformat(),
        "first_response_at": first,
        "resolved_at": resolved,
        "agent_replies": replies,
        "reopens": reopens,
    }


class TestServiceKPIs(KPIConformance):
    plugin = service_kpis
    kpis = ("first_contact_resolution", "first_response_hours", "tickets")
    tables = {
        "support_tickets": [
            # resolved 30 hours after creation: all of January's in January
            _ticket("t1", "2024-01-03T08:00:00", replies=1, hours=2),
            _ticket("t2", "2024-01-04T08:00:00", replies=3, hours=6),
            _ticket("t3", "2024-01-05T08:00:00", replies=1, reopens=1, hours=1),
            _ticket("t4", "2024-01-10T08:00:00", replies=0),  # resolved with no reply: counts as one contact
            _ticket("t5", "2024-02-05T08:00:00", replies=1, hours=4),
            {**_ticket("gone", "2024-02-06T08:00:00", replies=1, hours=1), "status": "deleted"},
        ]
    }
    expected = {
        # resolved: Jan t1 t2 t3 t4, at most one reply and no reopen: t1 t4 -> 2 / 4 = 0.5; Feb t5 -> 1 / 1
        # (Q1: 3 / 5 = 0.6, mean 0.75); the deleted ticket is in neither
        "first_contact_resolution": {"2024-01": 0.5, "2024-02": 1.0},
        # answered tickets by creation: Jan (2 + 6 + 1) / 3 = 3 hours; Feb 4 / 1 (Q1: 13 / 4 = 3.25, mean 3.5)
        "first_response_hours": {"2024-01": 3.0, "2024-02": 4.0},
        "tickets": {"2024-01": 4, "2024-02": 1},
    }


def _answer(response_id: str, item: str, at: str, score: int) -> dict:
    scale = (0, 10) if item == "nps" else (1, 5)
    return {
        "response_id": response_id,
        "item": item,
        "responded_at": at,
        "score": score,
        "scale_min": scale[0],
        "scale_max": scale[1],
    }


class TestSurveyKPIs(KPIConformance):
    plugin = survey_kpis
    kpis = ("nps", "csat")
    tables = {
        "survey_responses": [
            *(_answer(f"n{i}", "nps", "2024-01-15T12:00:00Z", s) for i, s in enumerate([10, 9, 8, 3])),
            *(_answer(f"m{i}", "nps", "2024-02-15T12:00:00Z", s) for i, s in enumerate([10, 0])),
            *(_answer(f"c{i}", "csat", "2024-01-20T12:00:00Z", s) for i, s in enumerate([5, 4, 2])),
            _answer("d0", "csat", "2024-02-20T12:00:00Z", 5),
        ]
    }
    expected = {
        # Jan: promoters 10, 9 minus detractor 3, of 4 answers: (2 - 1) / 4 = 0.25; Feb: (1 - 1) / 2 = 0
        # (Q1: 1 / 6 = 0.1667, mean 0.125)
        "nps": {"2024-01": 25.0, "2024-02": 0.0},
        # top two boxes (4-5 of 1-5): Jan 2 / 3; Feb 1 / 1 (Q1: 3 / 4 = 0.75, mean 0.8333)
        "csat": {"2024-01": 2 / 3, "2024-02": 1.0},
    }
