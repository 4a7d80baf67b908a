"""Performance metrics of an equity curve and of a trade list (definitions, with a worked
example: docs/backtest.md).

Conventions: the curve starts from the initial capital before the first bar, so n bars give n
returns r_t = E_t / E_{t-1} - 1; a year has ``periods`` bars (inferred from the bar spacing,
252 for daily bars); volatility uses the sample standard deviation (ddof 1); Sortino's downside
deviation is sqrt(mean(min(r_t - rf, 0)^2)); CAGR uses the calendar time between the first and
the last bar when ``years`` is given, else n / periods years; a drawdown's duration counts bars
from a peak until the curve is back at that peak (or the end). Values that are not finite
(a missing price) are left out, so the metrics stay consistent with each other. Ratios that
divide by zero are null.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["equity_metrics", "trade_metrics", "drawdown"]


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def drawdown(equity: np.ndarray, capital: float) -> tuple[np.ndarray, float, int]:
    """(drawdown per bar as a fraction, max drawdown, longest drawdown duration in bars).
    A bar without a value (NaN) has a NaN drawdown and does not move the peak."""
    curve = np.concatenate(([capital], equity))
    if not np.isfinite(curve).all():
        valid = np.isfinite(curve)
        dd_valid, mx, longest = drawdown(curve[valid][1:], float(curve[0]) if valid[0] else capital)
        dd = np.full(len(equity), np.nan)
        dd[valid[1:]] = dd_valid
        return dd, mx, longest
    peaks = np.maximum.accumulate(curve)
    with np.errstate(all="ignore"):
        dd = np.where(peaks > 0, 1 - curve / peaks, 0.0)
    under = np.concatenate(([False], dd[1:] > 0, [False])).astype(np.int8)
    edges = np.diff(under)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int((ends - starts).max()) if len(starts) else 0
    return dd[1:], float(dd.max()) if len(dd) else 0.0, longest


def equity_metrics(equity: np.ndarray, capital: float, *, periods: float = 252, risk_free: float = 0.0,
                   years: float | None = None) -> dict[str, Any]:
    """Return and risk metrics of ``equity`` (one value per bar) from ``capital``. ``years``:
    the calendar time the curve spans (CAGR's exponent is 1 / years), else bars / periods."""
    equity = np.asarray(equity, dtype=np.float64)
    equity = equity[np.isfinite(equity)]
    n = len(equity)
    if n == 0:
        return {"bars": 0, "final_equity": capital, "total_return": 0.0, "cagr": None,
                "volatility": None, "sharpe": None, "sortino": None, "max_drawdown": 0.0,
                "max_drawdown_bars": 0, "calmar": None}
    curve = np.concatenate(([capital], equity))
    with np.errstate(all="ignore"):
        r = curve[1:] / curve[:-1] - 1
    r = np.where(np.isfinite(r), r, 0.0)
    total = float(equity[-1] / capital - 1)
    span = years if years is not None and years > 0 else n / periods
    if years is not None and years <= 0:
        cagr = math.nan  # one instant: no rate
    else:
        cagr = (1 + total) ** (1 / span) - 1 if total > -1 else -1.0
    rf = risk_free / periods
    excess = r - rf
    std = float(np.std(r, ddof=1)) if n > 1 else 0.0
    vol = std * math.sqrt(periods)
    sharpe = float(np.mean(excess)) / std * math.sqrt(periods) if std > 0 else None
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    sortino = float(np.mean(excess)) / downside * math.sqrt(periods) if downside > 0 else None
    _, max_dd, dd_bars = drawdown(equity, capital)
    return {
        "bars": n,
        "final_equity": float(equity[-1]),
        "total_return": total,
        "cagr": _clean(cagr),
        "volatility": _clean(vol) if n > 1 else None,
        "sharpe": _clean(sharpe) if sharpe is not None else None,
        "sortino": _clean(sortino) if sortino is not None else None,
        "max_drawdown": max_dd,
        "max_drawdown_bars": dd_bars,
        "calmar": _clean(cagr / max_dd) if max_dd > 0 else None,
    }


def trade_metrics(pnls: np.ndarray, *, open_trades: int = 0, fees: float = 0.0,
                  shares: np.ndarray | None = None) -> dict[str, Any]:
    """Statistics of the closed trades' P&L (money, fees included)."""
    pnls = np.asarray(pnls, dtype=float)
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    gross_loss = float(-losses.sum())
    return {
        "trades": int(len(pnls)),
        "open_trades": int(open_trades),
        "win_rate": float(len(wins) / len(pnls)) if len(pnls) else None,
        "profit_factor": float(wins.sum()) / gross_loss if gross_loss > 0 else None,
        "expectancy": float(pnls.mean()) if len(pnls) else None,
        "avg_win": float(wins.mean()) if len(wins) else None,
        "avg_loss": float(losses.mean()) if len(losses) else None,
        "exposure": float((shares > 0).mean()) if shares is not None and len(shares) else None,
        "fees": float(fees),
    }
