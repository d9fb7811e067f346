"""The connection pool and the queries, one function per read or write. Every query is a literal."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from .settings import Settings


RECONNECT_SECONDS = 1.0


def make_pool(settings: Settings) -> AsyncConnectionPool:
    """While the database is away a request waits `pool_timeout_seconds` for a connection, then its
    503 (psycopg.OperationalError, see problems.py); a failed connection attempt is retried for
    RECONNECT_SECONDS only, after which the next request tries again, so the service is back as
    soon as its database is (psycopg_pool's own retries back off to minutes)."""
    return AsyncConnectionPool(settings.conninfo(), timeout=settings.pool_timeout_seconds,
                               reconnect_timeout=RECONNECT_SECONDS, min_size=settings.pool_min_size,
                               max_size=settings.pool_max_size, open=False, name="portfolio",
                               # prepare_threshold None: no named prepared statements, which a
                               # pooler in transaction mode (pgbouncer) cannot carry
                               kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": None})


async def _one(conn: AsyncConnection, query: str, args: tuple) -> dict | None:
    return await (await conn.execute(query, args)).fetchone()


async def _all(conn: AsyncConnection, query: str, args: tuple) -> list[dict]:
    return await (await conn.execute(query, args)).fetchall()


async def list_portfolios(conn: AsyncConnection, owner: str, limit: int, offset: int) -> tuple[list[dict], int]:
    total = await _one(conn, "SELECT count(*) AS n FROM portfolios WHERE owner_sub = %s", (owner,))
    rows = await _all(conn, """
        SELECT id, name, currency, created_at FROM portfolios WHERE owner_sub = %s
        ORDER BY id LIMIT %s OFFSET %s""", (owner, limit, offset))
    return rows, total["n"]


async def get_portfolio(conn: AsyncConnection, owner: str, portfolio_id: int) -> dict | None:
    return await _one(conn, """
        SELECT id, name, currency, created_at FROM portfolios WHERE id = %s AND owner_sub = %s""",
        (portfolio_id, owner))


async def get_portfolio_version(conn: AsyncConnection, owner: str, portfolio_id: int) -> dict | None:
    """The portfolio with its `ledger_version` (a new value after each write to its transactions)."""
    return await _one(conn, """
        SELECT id, name, currency, created_at, ledger_version FROM portfolios
        WHERE id = %s AND owner_sub = %s""", (portfolio_id, owner))


async def get_portfolio_prices(conn: AsyncConnection, owner: str, portfolio_id: int,
                               symbols: list[str]) -> dict | None:
    """The portfolio with its `ledger_version` and, read in the same statement, the latest prices of
    `symbols` in its currency: `prices` maps a symbol to (price, as_of)."""
    row = await _one(conn, """
        SELECT p.id, p.name, p.currency, p.created_at, p.ledger_version,
               latest.symbols, latest.prices, latest.as_ofs
        FROM portfolios p LEFT JOIN LATERAL (
            SELECT array_agg(symbol) AS symbols, array_agg(price) AS prices, array_agg(as_of) AS as_ofs
            FROM (SELECT DISTINCT ON (symbol) symbol, price, as_of FROM prices
                  WHERE currency = p.currency AND symbol = ANY(%s) ORDER BY symbol, as_of DESC) newest
        ) latest ON true
        WHERE p.id = %s AND p.owner_sub = %s""", (symbols, portfolio_id, owner))
    if row is not None:
        found = zip(row.pop("symbols") or (), row.pop("prices") or (), row.pop("as_ofs") or ())
        row["prices"] = {symbol: (price, as_of) for symbol, price, as_of in found}
    return row


async def lock_portfolio(conn: AsyncConnection, owner: str, portfolio_id: int) -> dict | None:
    """The portfolio, locked until the transaction ends (serializes writes to its ledger)."""
    return await _one(conn, """
        SELECT id, name, currency, created_at FROM portfolios WHERE id = %s AND owner_sub = %s
        FOR UPDATE""", (portfolio_id, owner))


async def create_portfolio(conn: AsyncConnection, owner: str, name: str, currency: str) -> dict:
    return await _one(conn, """
        INSERT INTO portfolios (owner_sub, name, currency) VALUES (%s, %s, %s)
        RETURNING id, name, currency, created_at""", (owner, name, currency))


async def rename_portfolio(conn: AsyncConnection, owner: str, portfolio_id: int, name: str) -> dict | None:
    return await _one(conn, """
        UPDATE portfolios SET name = %s WHERE id = %s AND owner_sub = %s
        RETURNING id, name, currency, created_at""", (name, portfolio_id, owner))


async def delete_portfolio(conn: AsyncConnection, owner: str, portfolio_id: int) -> bool:
    cursor = await conn.execute("DELETE FROM portfolios WHERE id = %s AND owner_sub = %s", (portfolio_id, owner))
    return cursor.rowcount == 1


async def list_transactions(conn: AsyncConnection, portfolio_id: int, limit: int, offset: int,
                            type: str | None) -> tuple[list[dict], int]:
    total = await _one(conn, """
        SELECT count(*) AS n FROM transactions
        WHERE portfolio_id = %s AND (%s::text IS NULL OR type = %s)""", (portfolio_id, type, type))
    rows = await _all(conn, """
        SELECT id, type, symbol, quantity, price, amount, fee, executed_at FROM transactions
        WHERE portfolio_id = %s AND (%s::text IS NULL OR type = %s)
        ORDER BY executed_at, id LIMIT %s OFFSET %s""", (portfolio_id, type, type, limit, offset))
    return rows, total["n"]


async def ledger(conn: AsyncConnection, portfolio_id: int) -> list[tuple]:
    """All of a portfolio's transactions in execution order, as tuples in `valuation.Entry` order."""
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute("""
        SELECT type, symbol, quantity, price, amount, fee FROM transactions
        WHERE portfolio_id = %s ORDER BY executed_at, id""", (portfolio_id,))
    return await cursor.fetchall()


async def trades(conn: AsyncConnection, portfolio_id: int, symbol: str) -> list[dict]:
    """One symbol's buys and sells, with their execution times, in execution order."""
    return await _all(conn, """
        SELECT type, quantity, executed_at FROM transactions
        WHERE portfolio_id = %s AND symbol = %s AND type IN ('buy', 'sell')
        ORDER BY executed_at, id""", (portfolio_id, symbol))


async def insert_transaction(conn: AsyncConnection, portfolio_id: int, type: str, symbol: str | None,
                             quantity: Decimal | None, price: Decimal | None, amount: Decimal | None,
                             fee: Decimal, executed_at: datetime) -> dict:
    return await _one(conn, """
        INSERT INTO transactions (portfolio_id, type, symbol, quantity, price, amount, fee, executed_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING id, type, symbol, quantity, price, amount, fee, executed_at""",
        (portfolio_id, type, symbol, quantity, price, amount, fee, executed_at))


async def latest_prices(conn: AsyncConnection, currency: str, symbols: list[str]) -> dict[str, tuple]:
    rows = await _all(conn, """
        SELECT DISTINCT ON (symbol) symbol, price, as_of FROM prices
        WHERE currency = %s AND symbol = ANY(%s) ORDER BY symbol, as_of DESC""", (currency, symbols))
    return {row["symbol"]: (row["price"], row["as_of"]) for row in rows}


async def upsert_price(conn: AsyncConnection, symbol: str, currency: str, price: Decimal, as_of: datetime) -> dict:
    return await _one(conn, """
        INSERT INTO prices (symbol, currency, price, as_of) VALUES (%s, %s, %s, %s)
        ON CONFLICT (symbol, currency, as_of) DO UPDATE SET price = EXCLUDED.price
        RETURNING symbol, currency, price, as_of""", (symbol, currency, price, as_of))


async def list_prices(conn: AsyncConnection, symbol: str, currency: str | None, limit: int,
                      offset: int) -> tuple[list[dict], int]:
    total = await _one(conn, """
        SELECT count(*) AS n FROM prices WHERE symbol = %s AND (%s::text IS NULL OR currency = %s)""",
        (symbol, currency, currency))
    rows = await _all(conn, """
        SELECT symbol, currency, price, as_of FROM prices
        WHERE symbol = %s AND (%s::text IS NULL OR currency = %s)
        ORDER BY as_of DESC, currency LIMIT %s OFFSET %s""", (symbol, currency, currency, limit, offset))
    return rows, total["n"]


async def ping(conn: AsyncConnection) -> None:
    await conn.execute("SELECT 1")
