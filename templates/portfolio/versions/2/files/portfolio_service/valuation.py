"""Holdings and valuation from a transaction ledger, by the average-cost method, in exact decimals.

- buy: cost basis += quantity × price + fee; quantity += quantity.
- sell: the sold quantity leaves at the current average cost
  (cost removed = basis × sold / held; the whole basis when the position closes);
  realized gain += quantity × price − fee − cost removed.
- dividend: dividends += amount (reported apart from realized gain).
- cash: deposits − withdrawals − buy costs + sell proceeds + dividends.
- unrealized gain = quantity × latest price − cost basis (unknown without a price).

Arithmetic runs with 60 significant digits; reported values are decimal strings rounded half-even
to 10 places.

A replayed ledger is kept per portfolio in a LedgerCache, keyed by the portfolio's `ledger_version`
(a new value after every write to its transactions, set by a database trigger), so reads replay a
ledger only after it changed; prices are read on every request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
PLACES = Decimal("1e-10")
ZERO = Decimal(0)


def rounded(value: Decimal) -> str:
    """A reported value as a decimal string: 10 places at most, no trailing zeros, no exponent, never `-0`."""
    value = value.quantize(PLACES, context=CONTEXT)
    return format(value.normalize(CONTEXT), "f") if value else "0"


class Entry(NamedTuple):
    """One transaction; the ledger query returns its rows in this column order."""

    type: str
    symbol: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    amount: Decimal | None = None
    fee: Decimal = ZERO


class OversoldError(ValueError):
    def __init__(self, symbol: str, held: Decimal, wanted: Decimal):
        super().__init__(f"cannot sell {wanted} {symbol}: {held} held at that time")
        self.symbol, self.held, self.wanted = symbol, held, wanted


@dataclass
class Position:
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realized_gain: Decimal = ZERO
    dividends: Decimal = ZERO


@dataclass
class Ledger:
    positions: dict[str, Position] = field(default_factory=dict)
    cash: Decimal = ZERO


def replay(entries: Iterable[Entry | tuple]) -> Ledger:
    """The positions and cash after the transactions, in execution order; a sell beyond the quantity held
    raises OversoldError."""
    ledger = Ledger()
    positions = ledger.positions
    cash = ZERO
    with localcontext(CONTEXT):
        for type, symbol, quantity, price, amount, fee in entries:
            if type == "deposit":
                cash += amount
            elif type == "withdrawal":
                cash -= amount
            elif type == "buy":
                position = positions.get(symbol) or positions.setdefault(symbol, Position())
                cost = quantity * price + fee
                position.quantity += quantity
                position.cost_basis += cost
                cash -= cost
            elif type == "sell":
                position = positions.get(symbol) or positions.setdefault(symbol, Position())
                if quantity > position.quantity:
                    raise OversoldError(symbol, position.quantity, quantity)
                if quantity == position.quantity:
                    removed = position.cost_basis
                else:
                    removed = position.cost_basis * quantity / position.quantity
                proceeds = quantity * price - fee
                position.quantity -= quantity
                position.cost_basis -= removed
                position.realized_gain += proceeds - removed
                cash += proceeds
            elif type == "dividend":
                (positions.get(symbol) or positions.setdefault(symbol, Position())).dividends += amount
                cash += amount
            else:
                raise ValueError(f"unknown transaction type {type!r}")
    ledger.cash = cash
    return ledger


class LedgerCache:
    """Replayed ledgers by portfolio id, each with the `ledger_version` it was replayed at; the least
    recently used beyond `size` are dropped. A ledger is served only for the exact version it was read
    at, so a write (any writer: the trigger sets a new version) makes the next read replay again.

    With each ledger, one rendered answer may be kept under a key the caller builds from everything
    else the answer depends on (the prices read); it goes with the ledger when the version changes."""

    def __init__(self, size: int = 1024):
        self.size = size
        # portfolio id -> [version, ledger, answer key, answer]
        self._entries: OrderedDict[int, list] = OrderedDict()

    def get(self, portfolio_id: int, version: object) -> Ledger | None:
        entry = self._entries.get(portfolio_id)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(portfolio_id)
        return entry[1]

    def symbols(self, portfolio_id: int) -> list[str]:
        """The symbols of the ledger kept for the portfolio at whichever version (a guess for reading its
        prices in the same query as its version); [] when none is kept."""
        entry = self._entries.get(portfolio_id)
        return list(entry[1].positions) if entry else []

    def put(self, portfolio_id: int, version: object, ledger: Ledger) -> None:
        """Keep `ledger` as the replay of `portfolio_id` at `version` — the version must have been read
        before (or in the same snapshot as) the transactions, so that a newer ledger may be stored under
        an older version (harmless: that version is never read again) but never the reverse."""
        self._entries[portfolio_id] = [version, ledger, None, None]
        self._entries.move_to_end(portfolio_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def answer(self, portfolio_id: int, ledger: Ledger, key: object) -> object | None:
        """The answer kept for this very ledger object under `key`, if any."""
        entry = self._entries.get(portfolio_id)
        if entry is None or entry[1] is not ledger or entry[2] != key:
            return None
        return entry[3]

    def keep_answer(self, portfolio_id: int, ledger: Ledger, key: object, answer: object) -> None:
        """Keep `answer` (computed from `ledger` and what `key` says) while that ledger is the one kept."""
        entry = self._entries.get(portfolio_id)
        if entry is not None and entry[1] is ledger:
            entry[2], entry[3] = key, answer


def holdings(ledger: Ledger) -> list[dict]:
    """Open positions: symbol, quantity, average cost and cost basis."""
    rows = []
    with localcontext(CONTEXT):
        for symbol, p in sorted(ledger.positions.items()):
            if p.quantity:
                rows.append({"symbol": symbol, "quantity": rounded(p.quantity),
                             "average_cost": rounded(p.cost_basis / p.quantity),
                             "cost_basis": rounded(p.cost_basis)})
    return rows


def valuation(ledger: Ledger, prices: Mapping[str, tuple[Decimal, object]]) -> dict:
    """Per symbol ever held and in total: market value, cost basis, unrealized/realized gain, dividends.

    `prices` maps a symbol to (latest price, as_of). A position without a price has no market value
    and no unrealized gain, and the totals say how many positions are unpriced.
    """
    rows = []
    total = dict(market_value=ZERO, cost_basis=ZERO, unrealized_gain=ZERO, realized_gain=ZERO, dividends=ZERO)
    unpriced = 0
    with localcontext(CONTEXT):
        for symbol, p in sorted(ledger.positions.items()):
            price, as_of = prices.get(symbol, (None, None))
            if p.quantity and price is None:
                unpriced += 1
                market_value = unrealized = None
            else:
                market_value = p.quantity * price if p.quantity else ZERO
                unrealized = market_value - p.cost_basis
                total["market_value"] += market_value
                total["unrealized_gain"] += unrealized
            total["cost_basis"] += p.cost_basis
            total["realized_gain"] += p.realized_gain
            total["dividends"] += p.dividends
            rows.append({
                "symbol": symbol,
                "quantity": rounded(p.quantity),
                "average_cost": rounded(p.cost_basis / p.quantity) if p.quantity else None,
                "cost_basis": rounded(p.cost_basis),
                "price": rounded(price) if price is not None else None,
                "price_as_of": as_of,
                "market_value": rounded(market_value) if market_value is not None else None,
                "unrealized_gain": rounded(unrealized) if unrealized is not None else None,
                "realized_gain": rounded(p.realized_gain),
                "dividends": rounded(p.dividends),
            })
        totals = {key: rounded(value) for key, value in total.items()}
        totals["cash"] = rounded(ledger.cash)
        totals["total_value"] = rounded(total["market_value"] + ledger.cash)
        totals["unpriced_positions"] = unpriced
    return {"holdings": rows, "totals": totals}
