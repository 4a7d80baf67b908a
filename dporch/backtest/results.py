"""What a backtest returns (light: pandas only, so the report's helper process loads fast)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["BacktestResult", "SweepResult", "refusal_text", "REFUSALS"]

#: Why an order did not fill.
REFUSALS = {
    "cash": "not enough cash for one lot (or the minimum fee)",
    "lot": "a partial sell smaller than one lot",
    "t_plus_1": "shares bought today cannot be sold until the next trading day (T+1)",
    "limit_up": "a buy at the limit-up price",
    "limit_down": "a sell at the limit-down price",
}


@dataclass
class BacktestResult:
    bars: pd.DataFrame  # bars of the charted instruments (those with the most trades)
    trades: pd.DataFrame  # closed trades by entry time, then the open ones
    portfolio: pd.DataFrame  # time, equity, drawdown
    summary: dict[str, Any]
    instruments: pd.DataFrame  # one row of metrics per instrument
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)


@dataclass
class SweepResult:
    table: pd.DataFrame  # one row per combination: the parameters, the metrics, the rank
    rank: str
    names: list[str]  # swept parameter names
    best: BacktestResult  # the full run of the best combination
    timings: dict[str, float]


def refusal_text(refused: dict[str, int]) -> str:
    return "; ".join(f"{k} {REFUSALS.get(why, why)}" for why, k in sorted(refused.items()))
