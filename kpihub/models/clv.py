"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model.

* BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way",
  Marketing Science 24(2)): while alive, a customer buys at a Poisson rate λ ~
  Gamma(r, α); after each purchase they drop out with probability p ~
  Beta(a, b). Fitted by maximum likelihood on each customer's ``frequency``
  (repeat purchases), ``recency`` (time of the last purchase since the first)
  and ``T`` (time since the first purchase), all in the same time unit.
* Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves";
  Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value"): the mean
  spend of a customer's repeat purchases, with parameters ``p, q, γ``; fitted
  on customers with at least one repeat purchase.

CLV is the discounted expected spend over a horizon: the expected purchases in
each month times the expected spend per purchase, discounted monthly.

Both fits maximise the log-likelihood over log-parameters (so they stay
positive) with scipy's L-BFGS-B from two starting points and keep the best.
On data without signal for a parameter (no heterogeneity in dropout: a, b →
∞ along a flat ridge) the optimiser stops on the ridge: predictions there
are stable although the parameters are not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = ["BGNBD", "GammaGamma", "customer_lifetime_value", "fit_bgnbd", "fit_gamma_gamma"]

ArrayLike = np.ndarray | list[float]


def _arrays(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in values]


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters and the fit's log-likelihood."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    #: A parameter ended on the search bound: the data carry no signal for it (see LOG_BOUND).
    at_bound: bool = False

    def expected_purchases(self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """E[purchases in (T, T + t] | frequency, recency, T] — FHL 2005, eq. 10."""
        x, tx, T_ = _arrays(frequency, recency, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if a == 1:  # the closed form divides by a − 1
            a = 1 + 1e-9
        with np.errstate(all="ignore"):
            z = t / (alpha + T_ + t)
            hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
            first = (a + b + x - 1) / (a - 1)
            second = 1 - ((alpha + T_) / (alpha + T_ + t)) ** (r + x) * hyp
            return first * second / self._alive_denominator(x, tx, T_)

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """P(alive at T | frequency, recency, T) — Fader, Hardie & Lee 2008 note."""
        x, tx, T_ = _arrays(frequency, recency, T)
        return 1.0 / self._alive_denominator(x, tx, T_)

    def _alive_denominator(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(all="ignore"):
            odds = np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x), 0.0)
        return 1.0 + odds


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Each customer's BG/NBD log-likelihood (FHL 2005, eq. 6)."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + tx), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


#: Fits search log-parameters within ±LOG_BOUND: a parameter that ends on the bound means the data
#: hold no signal for it (no dropout seen: a → ∞), which the fit reports instead of overflowing.
LOG_BOUND = 15.0


def _fit(negative_ll: Callable[[np.ndarray], float], starts: list[np.ndarray]) -> tuple[np.ndarray, float, bool]:
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(starts[0])
    best = None
    with np.errstate(all="ignore"):
        for start in starts:
            res = optimize.minimize(
                negative_ll, np.log(start), method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-15, "gtol": 1e-10}
            )
            if best is None or res.fun < best.fun:
                best = res
    assert best is not None
    at_bound = bool(np.any(np.abs(best.x) > LOG_BOUND - 1e-3))
    return np.exp(best.x), -float(best.fun), at_bound


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BGNBD:
    """Fit BG/NBD by maximum likelihood; identical customers are weighted, not repeated."""
    x, tx, T_ = _arrays(frequency, recency, T)
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer")
    if np.any(x < 0) or np.any(tx < 0) or np.any(tx > T_ + 1e-9):
        raise ValueError("BG/NBD inputs need frequency ≥ 0 and 0 ≤ recency ≤ T")
    rows, weights = np.unique(np.column_stack([x, tx, T_]), axis=0, return_counts=True)
    ux, utx, uT = rows[:, 0], rows[:, 1], rows[:, 2]
    scale = len(x)

    def negative_ll(log_params: np.ndarray) -> float:
        ll = bgnbd_log_likelihood(np.exp(log_params), ux, utx, uT)
        value = -float(np.sum(weights * ll)) / scale
        return value if np.isfinite(value) else 1e300

    starts = [np.array([1.0, 1.0, 1.0, 1.0]), np.array([0.5, float(np.mean(T_)) / 4 or 1.0, 1.0, 3.0])]
    (r, alpha, a, b), ll, at_bound = _fit(negative_ll, starts)
    return BGNBD(float(r), float(alpha), float(a), float(b), ll * scale, at_bound)


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend parameters (p, q, γ) and the fit's log-likelihood."""

    p: float
    q: float
    v: float
    log_likelihood: float
    #: A parameter ended on the search bound (see LOG_BOUND).
    at_bound: bool = False

    def expected_spend(self, frequency: ArrayLike, monetary: ArrayLike) -> np.ndarray:
        """E[spend per purchase | frequency, mean repeat spend]; the population mean when frequency is 0."""
        x, m = _arrays(frequency, monetary)
        p, q, v = self.p, self.q, self.v
        population = p * v / (q - 1)
        weight = (q - 1) / (p * x + q - 1)
        return weight * population + (1 - weight) * m

    @property
    def mean_spend(self) -> float:
        """E[M] = pγ / (q − 1), the population mean spend per purchase."""
        return self.p * self.v / (self.q - 1)


def fit_gamma_gamma(frequency: ArrayLike, monetary: ArrayLike) -> GammaGamma:
    """Fit Gamma-Gamma on customers with ``frequency > 0`` and positive mean spend ``monetary``."""
    x, m = _arrays(frequency, monetary)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) == 0:
        raise ValueError("Gamma-Gamma needs customers with at least one repeat purchase")
    # The same customers in another order (SQL rows come in any order) must fit the same parameters:
    # a float sum depends on its order, and the optimizer's path on the sums.
    order = np.lexsort((m, x))
    x, m = x[order], m[order]

    def negative_ll(log_params: np.ndarray) -> float:
        p, q, v = np.exp(log_params)
        ll = (
            special.gammaln(p * x + q)
            - special.gammaln(p * x)
            - special.gammaln(q)
            + q * np.log(v)
            + (p * x - 1) * np.log(m)
            + p * x * np.log(x)
            - (p * x + q) * np.log(v + m * x)
        )
        value = -float(np.sum(ll)) / len(x)
        return value if np.isfinite(value) else 1e300

    (p, q, v), ll, at_bound = _fit(negative_ll, [np.array([1.0, 1.0, 1.0]), np.array([2.0, 3.0, float(np.mean(m))])])
    return GammaGamma(float(p), float(q), float(v), ll * len(x), at_bound)


def customer_lifetime_value(
    bgnbd: BGNBD,
    gamma_gamma: GammaGamma,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary: ArrayLike,
    *,
    months: int = 12,
    units_per_month: float = 30.0,
    monthly_discount_rate: float = 0.01,
) -> np.ndarray:
    """Each customer's discounted expected spend over the next ``months``.

    ``units_per_month`` converts months into the time unit of recency/T (30 for days, 30/7 for
    weeks). Month ``i``'s expected purchases are E[Y(i)] − E[Y(i − 1)], discounted by
    ``(1 + monthly_discount_rate) ** i``.
    """
    spend = gamma_gamma.expected_spend(frequency, monetary)
    total = np.zeros_like(spend)
    previous = np.zeros_like(spend)
    for i in range(1, months + 1):
        expected = bgnbd.expected_purchases(i * units_per_month, frequency, recency, T)
        total += (expected - previous) * spend / (1 + monthly_discount_rate) ** i
        previous = expected
    return total
