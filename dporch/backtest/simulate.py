"""The trading engine: one instrument's bars and signals -> fills, positions, equity, trades.

Long only. A ``signal`` of buy (``买入``/``buy`` or a number > 0) spends ``size`` (default 1: all)
of the cash, a sell (``卖出``/``sell`` or a number < 0) sells ``size`` of the shares; anything
else holds (§13.6). Orders fill at the next bar's open (default: no look-ahead) or at the same
bar's close, with slippage on the price and a fee on the traded value. Shares are fractional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Costs", "Trade", "Book", "signal_code", "signal_codes", "simulate", "simulate_all_in",
           "Simulation"]

_BUY = {"买入", "buy"}
_SELL = {"卖出", "sell"}


@dataclass(frozen=True)
class Costs:
    fee: float = 0.0003  # fraction of the traded value, both sides
    slippage: float = 0.0  # fraction of the price, against us
    next_bar_open: bool = True  # False: fill at the signal bar's close


def signal_code(v: Any) -> int:
    """1 buy, -1 sell, 0 hold (§13.6: exact strings, or the sign of a number)."""
    if isinstance(v, str):
        return 1 if v in _BUY else -1 if v in _SELL else 0
    if isinstance(v, bool) or v is None:
        return 0
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0
    return 1 if x > 0 else -1 if x < 0 else 0


def signal_codes(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter((signal_code(v) for v in values), dtype=np.int8, count=len(values))


@dataclass
class Trade:
    """A round trip from flat to flat."""

    entry_time: Any
    entry_bar: int
    entry_price: float = 0.0  # average fill price of the buys
    shares: float = 0.0  # shares bought in total
    cost: float = 0.0  # money spent, fees included
    exit_time: Any = None
    exit_bar: int | None = None
    exit_price: float | None = None  # average fill price of the sells
    proceeds: float = 0.0  # money received, fees deducted
    fees: float = 0.0
    sold: float = 0.0

    @property
    def pnl(self) -> float:
        return self.proceeds - self.cost

    @property
    def ret(self) -> float:
        return self.pnl / self.cost if self.cost else 0.0

    @property
    def bars_held(self) -> int | None:
        return None if self.exit_bar is None else self.exit_bar - self.entry_bar

    @property
    def closed(self) -> bool:
        return self.exit_bar is not None


@dataclass
class Book:
    """Cash and shares of one instrument; fills orders and keeps the trade list."""

    cash: float
    costs: Costs
    shares: float = 0.0
    fees: float = 0.0
    trades: list[Trade] = field(default_factory=list)
    _open: Trade | None = None

    def buy(self, price: float, size: float, time: Any, bar: int) -> tuple[float, float]:
        """(shares bought, fee) at ``price`` (before slippage)."""
        if self.cash <= 0 or size <= 0 or not price > 0:
            return 0.0, 0.0
        c = self.costs
        pb = price * (1 + c.slippage)
        spend = self.cash * min(size, 1.0)
        qty = spend / (pb * (1 + c.fee))
        fee = qty * pb * c.fee
        self.cash -= qty * pb + fee
        if self.cash < 1e-9 * spend:
            self.cash = 0.0  # rounding dust of an all-in buy
        if self._open is None:
            self._open = Trade(time, bar)
            self.trades.append(self._open)
        t = self._open
        t.entry_price = pb if not t.shares else (t.entry_price * t.shares + pb * qty) / (t.shares + qty)
        t.shares += qty
        t.cost += qty * pb + fee
        t.fees += fee
        self.shares += qty
        self.fees += fee
        return qty, fee

    def sell(self, price: float, size: float, time: Any, bar: int) -> tuple[float, float]:
        """(shares sold, fee) at ``price`` (before slippage)."""
        if self.shares <= 0 or size <= 0 or not price > 0:
            return 0.0, 0.0
        c = self.costs
        ps = price * (1 - c.slippage)
        qty = self.shares if size >= 1 else self.shares * size
        value = qty * ps
        fee = value * c.fee
        self.cash += value - fee
        self.shares -= qty
        self.fees += fee
        t = self._open
        assert t is not None
        t.exit_price = ps if not t.sold else (t.exit_price * t.sold + ps * qty) / (t.sold + qty)  # type: ignore[operator]
        t.sold += qty
        t.proceeds += value - fee
        t.fees += fee
        if self.shares <= 1e-12 * t.shares:
            self.shares = 0.0
            t.exit_time, t.exit_bar = time, bar
            self._open = None
        return qty, fee

    def execute(self, code: int, price: float, size: float, time: Any, bar: int) -> tuple[float, float]:
        if code > 0:
            return self.buy(price, size, time, bar)
        if code < 0:
            q, f = self.sell(price, size, time, bar)
            return -q, f
        return 0.0, 0.0


@dataclass
class Simulation:
    """Per-bar records of one instrument (arrays of the bars' length) and its trades."""

    shares: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    filled: np.ndarray  # shares traded at the bar (+ bought, - sold)
    fill_price: np.ndarray  # NaN when nothing filled
    fee: np.ndarray
    trades: list[Trade]


def simulate_all_in(times: Sequence[Any], opens: np.ndarray, closes: np.ndarray, capital: float,
                    costs: Costs, signals: np.ndarray) -> Simulation:
    """:func:`simulate` for the all-in/all-out case (no sizes, signals known in advance),
    with numpy for the per-bar records: a buy while long and a sell while flat do nothing, so
    the position is long from each first buy after flat to the next sell. The fills go through
    the same :class:`Book` arithmetic, so the results are identical to :func:`simulate`."""
    n = len(closes)
    codes = np.asarray(signals, dtype=np.int8)
    # Bar at which each signal fills (next bar's open, or this bar's close).
    lag = 1 if costs.next_bar_open else 0
    fill_codes = np.zeros(n, dtype=np.int8)
    if n > lag:
        fill_codes[lag:] = codes[: n - lag]
    nz = np.flatnonzero(fill_codes)
    # Keep only state changes: a buy after flat, a sell after long.
    changes = []
    long = False
    prices_src = opens if costs.next_bar_open else closes
    for t in nz:
        c = fill_codes[t]
        if c > 0 and not long and prices_src[t] > 0:
            changes.append(t)
            long = True
        elif c < 0 and long and prices_src[t] > 0:
            changes.append(t)
            long = False
    book = Book(cash=capital, costs=costs)
    shares_at = np.zeros(len(changes) + 1)
    cash_at = np.zeros(len(changes) + 1)
    cash_at[0] = capital
    filled = np.zeros(n)
    fill_price = np.full(n, np.nan)
    fee = np.zeros(n)
    for i, t in enumerate(changes):
        price = float(prices_src[t])
        q, f = book.execute(int(fill_codes[t]), price, 1.0, times[t], int(t))
        filled[t] = q
        fill_price[t] = price * (1 + costs.slippage if q > 0 else 1 - costs.slippage)
        fee[t] = f
        shares_at[i + 1] = book.shares
        cash_at[i + 1] = book.cash
    segment = np.zeros(n, dtype=np.int64)  # index into shares_at/cash_at in force at each bar
    if changes:
        marks = np.zeros(n, dtype=np.int64)
        marks[np.array(changes)] = 1
        segment = np.cumsum(marks)
    shares = shares_at[segment]
    cash = cash_at[segment]
    equity = cash + shares * np.asarray(closes, dtype=np.float64)
    return Simulation(shares, cash, equity, filled, fill_price, fee, book.trades)


def simulate(times: Sequence[Any], opens: np.ndarray, closes: np.ndarray, capital: float,
             costs: Costs, signals: np.ndarray | None = None, sizes: np.ndarray | None = None,
             strategy: Callable[[int, float], tuple[int, float]] | None = None) -> Simulation:
    """Run the book over the bars. Signals come precomputed (``signals``/``sizes``) or from
    ``strategy(bar, shares_held) -> (code, size)`` called bar by bar, after any fill at the
    bar's open (this is what makes POSITION() see the holdings)."""
    n = len(closes)
    book = Book(cash=capital, costs=costs)
    shares = np.zeros(n)
    cash = np.zeros(n)
    equity = np.zeros(n)
    filled = np.zeros(n)
    fill_price = np.full(n, np.nan)
    fee = np.zeros(n)
    pending = (0, 1.0)
    for t in range(n):
        if costs.next_bar_open and pending[0]:
            price = float(opens[t])
            q, f = book.execute(pending[0], price, pending[1], times[t], t)
            if q:
                filled[t], fill_price[t], fee[t] = q, price * (1 + costs.slippage if q > 0 else 1 - costs.slippage), f
            pending = (0, 1.0)
        if strategy is not None:
            code, size = strategy(t, book.shares)
        else:
            code = int(signals[t]) if signals is not None else 0
            size = float(sizes[t]) if sizes is not None and sizes[t] == sizes[t] else 1.0
        if code:
            if costs.next_bar_open:
                pending = (code, size)
            else:
                price = float(closes[t])
                q, f = book.execute(code, price, size, times[t], t)
                if q:
                    filled[t] = q
                    fill_price[t] = price * (1 + costs.slippage if q > 0 else 1 - costs.slippage)
                    fee[t] = f
        shares[t] = book.shares
        cash[t] = book.cash
        equity[t] = book.cash + book.shares * float(closes[t])
    return Simulation(shares, cash, equity, filled, fill_price, fee, book.trades)
