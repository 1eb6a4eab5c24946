"""Stripe amounts are integers in the currency's minor unit; this is how many digits that is.

From Stripe's "Supported currencies" page (docs.stripe.com/currencies):
zero-decimal currencies are sent as whole units (500 JPY is ``500``);
three-decimal currencies in thousandths (5.124 KWD is ``5124``, rounded to
the nearest ten); ISK is zero-decimal in presentation but the API keeps two
decimals for backwards compatibility, so its wire exponent is 2; every other
currency has two.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
MONEY = pa.decimal128(38, 9)


def exponent(currency: str) -> int:
    code = currency.upper()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def to_major(amounts: pa.Array, currencies: pa.Array) -> pa.Array:
    """Minor-unit integers -> decimal major units, per row's currency (column-wise)."""
    upper = pc.utf8_upper(currencies)
    zero = pc.is_in(upper, value_set=pa.array(sorted(ZERO_DECIMAL)))
    three = pc.is_in(upper, value_set=pa.array(sorted(THREE_DECIMAL)))
    scale = pa.decimal128(4, 3)
    factor = pc.if_else(
        zero,
        pa.scalar(Decimal("1.000"), scale),
        pc.if_else(three, pa.scalar(Decimal("0.001"), scale), pa.scalar(Decimal("0.010"), scale)),
    )
    # int64 fits decimal128(20, 0); times a 3-digit scale stays exact well inside 38 digits.
    return pc.cast(pc.multiply(pc.cast(amounts, pa.decimal128(20, 0)), factor), MONEY)
