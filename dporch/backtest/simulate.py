"""The trading engine: one instrument's bars and signals -> fills, positions, equity, trades.

Long only. A buy spends ``size`` (default 1: all) of the cash, a sell sells ``size`` of the
shares; anything else holds (see :func:`signal_code` for the values). Orders fill at the next
bar's open (default: no look-ahead) or at the same bar's close, with slippage on the price and
a fee on the traded value.

Market rules (docs/backtest.md, all off by default; ``--market cn-a`` turns them on):

* ``lot_size``: shares are bought in whole lots (100 for A-shares; 1 for whole shares; 0 keeps
  fractional shares). A partial sell is rounded down to whole lots; selling everything may
  include an odd lot.
* ``t_plus_1``: shares bought on a trading day cannot be sold on that day.
* ``stamp_duty``: a tax on the value of sells only.
* ``min_fee``: the fee (commission) of an order is at least this much money.
* ``price_limit``: a buy whose fill price is at or above the limit-up price of the bar (the
  previous close x (1 + limit), rounded to 0.01) does not fill, nor a sell at or below the
  limit-down price.

An order that cannot fill is refused: it does nothing, and the refusal is counted by reason
(``Simulation.refused``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .results import REFUSALS

__all__ = ["Costs", "Trade", "Book", "signal_code", "signal_codes", "simulate", "simulate_all_in",
           "Simulation", "limit_prices", "REFUSALS", "cn_a_limit"]

_BUY = {"买入", "buy"}
_SELL = {"卖出", "sell"}
_NUMERAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

@dataclass(frozen=True)
class Costs:
    fee: float = 0.0003  # fraction of the traded value, both sides
    slippage: float = 0.0  # fraction of the price, against us
    next_bar_open: bool = True  # False: fill at the signal bar's close
    min_fee: float = 0.0  # money: the least fee of an order
    stamp_duty: float = 0.0  # fraction of the value of a sell
    lot_size: int = 0  # 0: fractional shares; n: whole multiples of n shares
    t_plus_1: bool = False
    price_limit: float = 0.0  # fraction of the previous close; 0: no limit
    board_limits: bool = False  # the price limit by A-share board (cn_a_limit) instead of price_limit

    def limit_for(self, key: Any) -> float:
        return cn_a_limit(key, self.price_limit) if self.board_limits else self.price_limit


def cn_a_limit(key: Any, main: float = 0.10) -> float:
    """The daily price limit of an A-share by its code: 20 % on ChiNext (300, 301) and the STAR
    market (688, 689), 30 % on the Beijing exchange (4xxxxx, 8xxxxx, 92xxxx), else ``main``.
    (ST shares have 5 %; the code does not say which they are.)"""
    code = str(key).strip()
    digits = re.sub(r"\D", "", code.split(".")[0]) if "." in code else re.sub(r"\D", "", code)
    if digits.startswith(("300", "301", "688", "689")):
        return 0.20
    if len(digits) == 6 and digits.startswith(("4", "8", "92")):
        return 0.30
    return main


def signal_code(v: Any) -> int:
    """1 buy, -1 sell, 0 hold: ``buy``/``买入`` and ``sell``/``卖出`` in any case (surrounding
    spaces ignored), or the sign of a number or of a numeral text."""
    if isinstance(v, str):
        s = v.strip()
        low = s.lower()
        if low in _BUY:
            return 1
        if low in _SELL:
            return -1
        if _NUMERAL.fullmatch(s):
            x = float(s)
            return 1 if x > 0 else -1 if x < 0 else 0
        return 0
    if isinstance(v, bool) or v is None:
        return 0
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0
    return 1 if x > 0 else -1 if x < 0 else 0


def signal_codes(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter((signal_code(v) for v in values), dtype=np.int8, count=len(values))


def _round_price(x: float) -> float:
    """Half up to 0.01 (exchange price ticks)."""
    return math.floor(x * 100 + 0.5 + 1e-7) / 100


def limit_prices(prev_close: float, limit: float) -> tuple[float, float]:
    """(limit-down, limit-up) prices of a bar after ``prev_close``."""
    return _round_price(prev_close * (1 - limit)), _round_price(prev_close * (1 + limit))


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
    refused: dict[str, int] = field(default_factory=dict)
    limit: float = 0.0  # this instrument's price limit
    _open: Trade | None = None
    _locked: float = 0.0  # shares bought on _locked_day (T+1)
    _locked_day: Any = None

    def _refuse(self, why: str) -> tuple[float, float]:
        self.refused[why] = self.refused.get(why, 0) + 1
        return 0.0, 0.0

    def _buy_qty(self, pb: float, spend: float) -> tuple[float, float]:
        """(shares, fee) of a buy spending at most ``spend`` at ``pb`` under the lot and
        minimum-fee rules."""
        c = self.costs
        qty = spend / (pb * (1 + c.fee))
        if c.lot_size:
            qty = math.floor(qty / c.lot_size + 1e-9) * c.lot_size
            while qty > 0 and qty * pb + max(qty * pb * c.fee, c.min_fee) > spend * (1 + 1e-12):
                qty -= c.lot_size
            return qty, max(qty * pb * c.fee, c.min_fee) if qty > 0 else 0.0
        if qty * pb * c.fee < c.min_fee:  # the minimum fee binds: it comes out of the spend
            qty = (spend - c.min_fee) / pb
            return qty, c.min_fee
        return qty, qty * pb * c.fee

    def buy(self, price: float, size: float, time: Any, bar: int, day: Any = None) -> tuple[float, float]:
        """(shares bought, fee) at ``price`` (before slippage)."""
        if self.cash <= 0 or size <= 0 or not price > 0:
            return 0.0, 0.0
        c = self.costs
        pb = price * (1 + c.slippage)
        spend = self.cash * min(size, 1.0)
        if c.lot_size or c.min_fee:
            qty, fee = self._buy_qty(pb, spend)
            if qty <= 0:
                return self._refuse("cash")
        else:  # fractional shares, proportional fee
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
        if c.t_plus_1:
            if self._locked_day != day:
                self._locked, self._locked_day = 0.0, day
            self._locked += qty
        return qty, fee

    def sell(self, price: float, size: float, time: Any, bar: int, day: Any = None) -> tuple[float, float]:
        """(shares sold, fee) at ``price`` (before slippage)."""
        if self.shares <= 0 or size <= 0 or not price > 0:
            return 0.0, 0.0
        c = self.costs
        sellable = self.shares
        if c.t_plus_1 and self._locked_day == day and self._locked > 0:
            sellable = self.shares - self._locked
            if sellable <= 1e-12 * self.shares:
                return self._refuse("t_plus_1")
        ps = price * (1 - c.slippage)
        qty = sellable if size >= 1 else min(self.shares * size, sellable)
        if c.lot_size and qty < sellable:
            qty = math.floor(qty / c.lot_size + 1e-9) * c.lot_size
            if qty <= 0:
                return self._refuse("lot")
        value = qty * ps
        fee = value * c.fee
        if c.min_fee or c.stamp_duty:
            fee = max(fee, c.min_fee) + value * c.stamp_duty
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

    def execute(self, code: int, price: float, size: float, time: Any, bar: int, day: Any = None,
                prev_close: float = math.nan) -> tuple[float, float]:
        """A buy (code > 0) or sell (< 0) order at ``price``; (shares, +bought/-sold, fee).
        ``prev_close``: the close before this bar, for the price limit."""
        if code > 0:
            if self.limit and self.cash > 0 and size > 0 and prev_close > 0 \
                    and price >= limit_prices(prev_close, self.limit)[1] - 1e-9:
                return self._refuse("limit_up")
            return self.buy(price, size, time, bar, day)
        if code < 0:
            if self.limit and self.shares > 0 and size > 0 and prev_close > 0 \
                    and price <= limit_prices(prev_close, self.limit)[0] + 1e-9:
                return self._refuse("limit_down")
            q, f = self.sell(price, size, time, bar, day)
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
    refused: dict[str, int] = field(default_factory=dict)


def _prev_closes(closes: np.ndarray) -> np.ndarray:
    prev = np.empty(len(closes))
    if len(closes):
        prev[0] = np.nan
        prev[1:] = closes[:-1]
    return prev


def simulate_all_in(times: Sequence[Any], opens: np.ndarray, closes: np.ndarray, capital: float,
                    costs: Costs, signals: np.ndarray, *, days: Sequence[Any] | None = None,
                    limit: float = 0.0) -> Simulation:
    """:func:`simulate` for signals known in advance without sizes, with numpy for the
    per-bar records: only the bars where an order arrives run through the :class:`Book`
    (the same arithmetic as :func:`simulate`, so the results are identical), and the holdings
    in between are carried forward."""
    n = len(closes)
    codes = np.asarray(signals, dtype=np.int8)
    # Bar at which each signal fills (next bar's open, or this bar's close).
    lag = 1 if costs.next_bar_open else 0
    fill_codes = np.zeros(n, dtype=np.int8)
    if n > lag:
        fill_codes[lag:] = codes[: n - lag]
    prices_src = opens if costs.next_bar_open else closes
    if not (costs.lot_size or costs.min_fee or costs.stamp_duty or costs.t_plus_1 or limit):
        return _all_in_plain(times, prices_src, closes, capital, costs, fill_codes)
    prev = _prev_closes(np.asarray(closes, dtype=np.float64))
    book = Book(cash=capital, costs=costs, limit=limit)
    changes: list[int] = []
    shares_at, cash_at = [0.0], [capital]
    filled = np.zeros(n)
    fill_price = np.full(n, np.nan)
    fee = np.zeros(n)
    for t in np.flatnonzero(fill_codes):
        c = int(fill_codes[t])
        if (c > 0 and book.cash <= 0) or (c < 0 and book.shares <= 0):
            continue  # a buy with no cash, a sell with no shares: nothing to do
        price = float(prices_src[t])
        q, f = book.execute(c, price, 1.0, times[t], int(t), days[t] if days is not None else int(t), prev[t])
        if q:
            filled[t] = q
            fill_price[t] = price * (1 + costs.slippage if q > 0 else 1 - costs.slippage)
            fee[t] = f
            changes.append(int(t))
            shares_at.append(book.shares)
            cash_at.append(book.cash)
    shares, cash, equity = _holdings(n, changes, shares_at, cash_at, closes)
    return Simulation(shares, cash, equity, filled, fill_price, fee, book.trades, book.refused)


def _holdings(n: int, changes: list[int], shares_at: list[float], cash_at: list[float],
              closes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shares, cash and equity at each of ``n`` bars, from the holdings after each change (the
    first entries: before any) and the bars where they changed."""
    segment = np.zeros(n, dtype=np.int64)  # index into shares_at/cash_at in force at each bar
    if changes:
        marks = np.zeros(n, dtype=np.int64)
        marks[np.array(changes)] = 1
        segment = np.cumsum(marks)
    shares = np.asarray(shares_at)[segment]
    cash = np.asarray(cash_at)[segment]
    return shares, cash, cash + shares * np.asarray(closes, dtype=np.float64)


def _all_in_plain(times: Sequence[Any], prices: np.ndarray, closes: np.ndarray, capital: float, costs: Costs,
                  fill_codes: np.ndarray) -> Simulation:
    """:func:`simulate_all_in` without market rules: the :class:`Book`'s arithmetic, expression
    for expression (so every value is identical), on local floats. All in, all out: after a buy
    the cash is 0, after a sell the shares are, so the position alternates."""
    n = len(closes)
    slip, rate = costs.slippage, costs.fee
    cash, shares = float(capital), 0.0
    changes: list[int] = []
    shares_at, cash_at = [0.0], [cash]
    filled = np.zeros(n)
    fill_price = np.full(n, np.nan)
    fee = np.zeros(n)
    trades: list[Trade] = []
    trade: Trade | None = None
    fees_total = 0.0
    order_bars = np.flatnonzero(fill_codes)
    # Plain Python floats and ints from here: indexing numpy arrays one value at a time is slow.
    order_prices = np.asarray(prices, dtype=np.float64)[order_bars].tolist()
    order_codes = fill_codes[order_bars].tolist()
    for t, price, code in zip(order_bars.tolist(), order_prices, order_codes):
        if not price > 0:
            continue
        if code > 0:
            if cash <= 0:
                continue
            pb = price * (1 + slip)
            spend = cash * 1.0
            qty = spend / (pb * (1 + rate))
            f = qty * pb * rate
            cash -= qty * pb + f
            if cash < 1e-9 * spend:
                cash = 0.0
            trade = Trade(times[t], t, pb, qty, qty * pb + f, fees=f)
            trades.append(trade)
            shares += qty
            filled[t], fill_price[t] = qty, pb
        else:
            if shares <= 0:
                continue
            assert trade is not None
            ps = price * (1 - slip)
            qty = shares
            value = qty * ps
            f = value * rate
            cash += value - f
            shares = 0.0
            trade.exit_price, trade.sold, trade.proceeds = ps, qty, value - f
            trade.fees += f
            trade.exit_time, trade.exit_bar = times[t], t
            filled[t], fill_price[t] = -qty, ps
        fee[t] = f
        fees_total += f
        changes.append(t)
        shares_at.append(shares)
        cash_at.append(cash)
    return Simulation(*_holdings(n, changes, shares_at, cash_at, closes), filled, fill_price, fee, trades, {})


def simulate(times: Sequence[Any], opens: np.ndarray, closes: np.ndarray, capital: float,
             costs: Costs, signals: np.ndarray | None = None, sizes: np.ndarray | None = None,
             strategy: Callable[[int, float], tuple[int, float]] | None = None, *,
             days: Sequence[Any] | None = None, limit: float = 0.0) -> Simulation:
    """Run the book over the bars. Signals come precomputed (``signals``/``sizes``) or from
    ``strategy(bar, shares_held) -> (code, size)`` called bar by bar, after any fill at the
    bar's open (this is what makes POSITION() see the holdings). ``days``: the trading day of
    each bar (for T+1; default: every bar is a day); ``limit``: the instrument's price limit."""
    n = len(closes)
    book = Book(cash=capital, costs=costs, limit=limit)
    prev = _prev_closes(np.asarray(closes, dtype=np.float64))
    shares = np.zeros(n)
    cash = np.zeros(n)
    equity = np.zeros(n)
    filled = np.zeros(n)
    fill_price = np.full(n, np.nan)
    fee = np.zeros(n)
    pending = (0, 1.0)
    for t in range(n):
        day = days[t] if days is not None else t
        if costs.next_bar_open and pending[0]:
            price = float(opens[t])
            q, f = book.execute(pending[0], price, pending[1], times[t], t, day, prev[t])
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
                q, f = book.execute(code, price, size, times[t], t, day, prev[t])
                if q:
                    filled[t] = q
                    fill_price[t] = price * (1 + costs.slippage if q > 0 else 1 - costs.slippage)
                    fee[t] = f
        shares[t] = book.shares
        cash[t] = book.cash
        equity[t] = book.cash + book.shares * float(closes[t])
    return Simulation(shares, cash, equity, filled, fill_price, fee, book.trades, book.refused)
