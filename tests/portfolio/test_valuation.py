"""Valuation and holdings served from the per-version ledger cache equal today's replay-everything algorithm.

The reference below is the implementation as it was before the cache (commit 654cad4: the ledger query,
`replay`, `holdings`, `valuation`, copied verbatim). Seeded random histories are written to the real
PostgreSQL (in bulk by SQL, one by one through the API, backdated, edited and deleted by SQL), and after
every change the service's answers must equal the reference computed from what the database holds then.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from types import SimpleNamespace
from typing import NamedTuple

import httpx
import psycopg
import pytest


from portfolio_service.app import create_app  # noqa: E402
from portfolio_service.models import Holdings, Valuation  # noqa: E402
from portfolio_service.testing import TokenIssuer, provisioned_settings, serve_app  # noqa: E402
from portfolio_service.valuation import Ledger as ServiceLedger  # noqa: E402
from portfolio_service.valuation import LedgerCache  # noqa: E402

DB = "portfolio_valuation_test_db"
OWNER = DB.removesuffix("_db") + "_user"  # not portfolio_user: ecosystems on this server make that one
SEED = 20240617
HISTORIES = 300
SYMBOLS = ["ACME", "BOLT", "CRUX", "DYNA", "EPIC"]
CURRENCIES = ["USD", "EUR"]

# --- the reference: today's algorithm (portfolio_service/valuation.py and db.ledger/db.latest_prices at 654cad4) ---

CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
PLACES = Decimal("1e-10")
ZERO = Decimal(0)


def rounded(value: Decimal) -> str:
    value = value.quantize(PLACES, context=CONTEXT)
    return format(value.normalize(CONTEXT), "f") if value else "0"


class Entry(NamedTuple):
    type: str
    symbol: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    amount: Decimal | None = None
    fee: Decimal = ZERO


class OversoldError(ValueError):
    pass


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


def holdings(ledger: Ledger) -> list[dict]:
    rows = []
    with localcontext(CONTEXT):
        for symbol, p in sorted(ledger.positions.items()):
            if p.quantity:
                rows.append({"symbol": symbol, "quantity": rounded(p.quantity),
                             "average_cost": rounded(p.cost_basis / p.quantity),
                             "cost_basis": rounded(p.cost_basis)})
    return rows


def valuation(ledger: Ledger, prices: Mapping[str, tuple[Decimal, object]]) -> dict:
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


def reference(conn: psycopg.Connection, portfolio_id: int, currency: str) -> tuple[dict, dict]:
    """(valuation, holdings) as the service answered them before the cache: replay everything, every time."""
    rows = conn.execute("""
        SELECT type, symbol, quantity, price, amount, fee FROM transactions
        WHERE portfolio_id = %s ORDER BY executed_at, id""", (portfolio_id,)).fetchall()
    ledger = replay(rows)
    prices = {symbol: (price, as_of) for symbol, price, as_of in conn.execute("""
        SELECT DISTINCT ON (symbol) symbol, price, as_of FROM prices
        WHERE currency = %s AND symbol = ANY(%s) ORDER BY symbol, as_of DESC""",
        (currency, list(ledger.positions))).fetchall()}
    value = {"portfolio_id": portfolio_id, "currency": currency, **valuation(ledger, prices)}
    held = {"portfolio_id": portfolio_id, "currency": currency, "items": holdings(ledger)}
    # serialized by the response models, as the service does (datetimes as ISO strings)
    return (Valuation.model_validate(value).model_dump(mode="json"),
            Holdings.model_validate(held).model_dump(mode="json"))


# --- random histories ---

def amount(rng: random.Random, digits: int = 6) -> Decimal:
    """A positive decimal with 0–10 places, like the API accepts."""
    return Decimal(rng.randint(1, 10 ** digits)).scaleb(-rng.randint(0, 10))


def history(rng: random.Random, count: int, start: datetime) -> list[dict]:
    """`count` valid transactions in execution order (never oversold), with timestamps that often tie."""
    held = dict.fromkeys(SYMBOLS, ZERO)
    rows, when = [], start
    for _ in range(count):
        when += timedelta(hours=rng.choice([0, 0, 1, 24, 24 * 30]))
        kind = rng.choices(["deposit", "withdrawal", "buy", "sell", "dividend"], [2, 1, 5, 4, 2])[0]
        symbol = rng.choice(SYMBOLS)
        if kind == "sell" and not held[symbol]:
            kind = "buy"
        fee = rng.choice([ZERO, ZERO, amount(rng, 3)])
        if kind == "buy":
            quantity = amount(rng)
            held[symbol] += quantity
            rows.append(dict(type="buy", symbol=symbol, quantity=quantity, price=amount(rng), fee=fee,
                             executed_at=when))
        elif kind == "sell":
            if rng.random() < 0.3:
                quantity = held[symbol]  # closes the position: the whole basis leaves
            else:
                quantity = (held[symbol] * Decimal(rng.random())).quantize(PLACES) or held[symbol]
            held[symbol] -= quantity
            rows.append(dict(type="sell", symbol=symbol, quantity=quantity, price=rng.choice([ZERO, amount(rng)]),
                             fee=fee, executed_at=when))
        elif kind == "dividend":
            rows.append(dict(type="dividend", symbol=symbol, amount=amount(rng, 4), executed_at=when))
        else:
            rows.append(dict(type=kind, amount=amount(rng, 8), executed_at=when))
    return rows


def api_body(row: dict) -> dict:
    body = {key: format(value, "f") if isinstance(value, Decimal) else value for key, value in row.items()}
    body["executed_at"] = row["executed_at"].isoformat()
    if row["type"] in ("buy", "sell"):
        body.setdefault("fee", "0")
    return body


def insert(conn: psycopg.Connection, portfolio_id: int, rows: list[dict]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany("""
            INSERT INTO transactions (portfolio_id, type, symbol, quantity, price, amount, fee, executed_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            [(portfolio_id, r["type"], r.get("symbol"), r.get("quantity"), r.get("price"), r.get("amount"),
              r.get("fee", ZERO), r["executed_at"]) for r in rows])


@pytest.fixture(scope="module")
def service(pg, tmp_path_factory):
    issuer = TokenIssuer()
    settings = provisioned_settings(pg, DB, issuer, tmp_path_factory.mktemp("jwks"), owner=OWNER)
    app = create_app(settings)
    with serve_app(app) as url, \
            httpx.Client(base_url=url, timeout=30, headers=issuer.headers("val", expires_in=3600)) as client, \
            psycopg.connect(pg.conninfo(dbname=DB), autocommit=True) as conn:
        yield SimpleNamespace(app=app, client=client, conn=conn)


def version(conn, portfolio_id: int):
    return conn.execute("SELECT ledger_version FROM portfolios WHERE id = %s", (portfolio_id,)).fetchone()[0]


def check(service, portfolio_id: int, currency: str) -> None:
    """The service's valuation (asked twice: replayed, then cached) and holdings equal the reference's."""
    expected_value, expected_holdings = reference(service.conn, portfolio_id, currency)
    for _ in range(2):
        response = service.client.get(f"/portfolios/{portfolio_id}/valuation")
        assert response.status_code == 200, response.text
        assert response.json() == expected_value
    assert service.client.get(f"/portfolios/{portfolio_id}/holdings").json() == expected_holdings
    # and the answers came from a ledger kept for the current version
    cached = service.app.state.ledger_cache.get(portfolio_id, version(service.conn, portfolio_id))
    assert isinstance(cached, ServiceLedger)


def test_valuation_equals_the_replay_everything_reference_on_random_histories(service):
    rng = random.Random(SEED)
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    for symbol in SYMBOLS[:-1]:  # EPIC never has a price; the others get several, in both currencies
        for currency in CURRENCIES:
            for day in sorted(rng.sample(range(2000), 3)):
                service.conn.execute("INSERT INTO prices (symbol, currency, price, as_of) VALUES (%s, %s, %s, %s)",
                                     (symbol, currency, amount(rng), start + timedelta(days=day)))
    shapes = dict.fromkeys(["closed", "sold", "backdated", "edited", "deleted"], 0)
    for n in range(HISTORIES):
        currency = rng.choice(CURRENCIES)
        created = service.client.post("/portfolios", json={"name": f"h{n}", "currency": currency})
        pid = created.json()["id"]
        rows = history(rng, rng.randint(0, 40), start + timedelta(days=rng.randint(0, 1000)))
        shapes["sold"] += any(r["type"] == "sell" for r in rows)
        insert(service.conn, pid, rows)
        check(service, pid, currency)

        # more of the same history through the API, some of it backdated between existing rows
        later = history(rng, rng.randint(1, 8), rows[-1]["executed_at"] if rows else start)
        for row in later:
            if rows and rng.random() < 0.3 and row["type"] != "sell":
                row["executed_at"] = rng.choice(rows)["executed_at"]
                shapes["backdated"] += 1
            response = service.client.post(f"/portfolios/{pid}/transactions", json=api_body(row))
            assert response.status_code in (201, 422), response.text
        check(service, pid, currency)

        # writes the API does not make: an edited price and fee, a deleted cash movement, a new price
        buy = service.conn.execute("""
            SELECT id FROM transactions WHERE portfolio_id = %s AND type = 'buy' ORDER BY random() LIMIT 1""",
            (pid,)).fetchone()
        if buy:
            service.conn.execute("UPDATE transactions SET price = %s, fee = %s WHERE id = %s",
                                 (amount(rng), amount(rng, 2), buy[0]))
            shapes["edited"] += 1
        deleted = service.conn.execute("""
            DELETE FROM transactions WHERE id = (SELECT id FROM transactions WHERE portfolio_id = %s
            AND type IN ('deposit', 'withdrawal', 'dividend') ORDER BY id LIMIT 1)""", (pid,)).rowcount
        shapes["deleted"] += deleted
        service.conn.execute("INSERT INTO prices (symbol, currency, price, as_of) VALUES (%s, %s, %s, %s)",
                             (rng.choice(SYMBOLS[:-1]), currency, amount(rng), datetime.now(timezone.utc)))
        check(service, pid, currency)
        shapes["closed"] += any(h["quantity"] == "0" for h in service.client.get(
            f"/portfolios/{pid}/valuation").json()["holdings"])
    # the seed exercised every kind of change (a changed seed that does not fails here, not silently)
    assert all(count >= 20 for count in shapes.values()), shapes


def test_every_write_to_a_ledger_gives_its_portfolio_a_new_version(service):
    conn = service.conn
    pid, other = (conn.execute("INSERT INTO portfolios (owner_sub, name, currency) VALUES ('v', 'v', 'USD')"
                               " RETURNING id").fetchone()[0] for _ in range(2))
    seen = {version(conn, pid)}
    other_version = version(conn, other)

    def changed() -> bool:
        now = version(conn, pid)
        new = now not in seen
        seen.add(now)
        return new

    row = conn.execute("INSERT INTO transactions (portfolio_id, type, amount) VALUES (%s, 'deposit', 5) RETURNING id",
                       (pid,)).fetchone()[0]
    assert changed()
    conn.execute("UPDATE transactions SET amount = 6 WHERE id = %s", (row,))
    assert changed()
    conn.execute("DELETE FROM transactions WHERE id = %s", (row,))
    assert changed()
    conn.execute("INSERT INTO transactions (portfolio_id, type, amount) VALUES (%s, 'deposit', 5)", (pid,))
    assert changed()
    conn.execute("UPDATE portfolios SET name = 'renamed' WHERE id = %s", (pid,))
    assert not changed()  # a rename is no change of the ledger
    assert version(conn, other) == other_version  # another portfolio's writes leave it alone
    conn.execute("DELETE FROM portfolios WHERE id = %s", (pid,))  # cascades through the trigger
    assert conn.execute("SELECT count(*) FROM transactions WHERE portfolio_id = %s", (pid,)).fetchone()[0] == 0


def test_the_ledger_cache_serves_only_the_version_it_was_given_and_keeps_the_most_recent():
    cache = LedgerCache(size=2)
    first, second, third = ServiceLedger(), ServiceLedger(), ServiceLedger()
    cache.put(1, "a", first)
    assert cache.get(1, "a") is first and cache.get(1, "b") is None and cache.get(2, "a") is None
    cache.put(2, "a", second)
    assert cache.get(1, "a") is first  # 1 is now the most recently used
    cache.put(3, "a", third)
    assert cache.get(2, "a") is None and cache.get(1, "a") is first and cache.get(3, "a") is third
    cache.put(1, "b", second)
    assert cache.get(1, "a") is None and cache.get(1, "b") is second


def test_a_kept_answer_is_served_only_with_its_ledger_and_key():
    cache = LedgerCache()
    ledger, newer = ServiceLedger(), ServiceLedger()
    cache.keep_answer(1, ledger, "k", b"lost")  # no ledger kept for 1: nothing to keep it with
    cache.put(1, "a", ledger)
    assert cache.answer(1, ledger, "k") is None
    cache.keep_answer(1, ledger, "k", b"body")
    assert cache.answer(1, ledger, "k") == b"body" and cache.answer(1, ledger, "other prices") is None
    cache.put(1, "b", newer)  # a new version drops the answer with the old ledger
    assert cache.answer(1, ledger, "k") is None and cache.answer(1, newer, "k") is None
    cache.keep_answer(1, ledger, "k", b"stale")  # computed from the old ledger: not kept
    assert cache.answer(1, newer, "k") is None
