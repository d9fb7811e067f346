"""The connection pool and the queries, one function per read or write."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .settings import Settings


def make_pool(settings: Settings) -> AsyncConnectionPool:
    return AsyncConnectionPool(settings.conninfo(), min_size=settings.pool_min_size,
                               max_size=settings.pool_max_size, open=False, name="portfolio",
                               kwargs={"autocommit": True, "row_factory": dict_row})


PORTFOLIO_COLUMNS = "id, name, currency, created_at"
TRANSACTION_COLUMNS = "id, type, symbol, quantity, price, amount, fee, executed_at"


async def list_portfolios(conn: AsyncConnection, owner: str, limit: int, offset: int) -> tuple[list[dict], int]:
    total = (await (await conn.execute(
        "SELECT count(*) AS n FROM portfolios WHERE owner_sub = %s", (owner,))).fetchone())["n"]
    rows = await (await conn.execute(
        f"SELECT {PORTFOLIO_COLUMNS} FROM portfolios WHERE owner_sub = %s ORDER BY id LIMIT %s OFFSET %s",
        (owner, limit, offset))).fetchall()
    return rows, total


async def get_portfolio(conn: AsyncConnection, owner: str, portfolio_id: int, *, lock: bool = False) -> dict | None:
    query = f"SELECT {PORTFOLIO_COLUMNS} FROM portfolios WHERE id = %s AND owner_sub = %s"
    if lock:
        query += " FOR UPDATE"
    return await (await conn.execute(query, (portfolio_id, owner))).fetchone()


async def create_portfolio(conn: AsyncConnection, owner: str, name: str, currency: str) -> dict:
    return await (await conn.execute(
        f"INSERT INTO portfolios (owner_sub, name, currency) VALUES (%s, %s, %s) RETURNING {PORTFOLIO_COLUMNS}",
        (owner, name, currency))).fetchone()


async def rename_portfolio(conn: AsyncConnection, owner: str, portfolio_id: int, name: str) -> dict | None:
    return await (await conn.execute(
        f"UPDATE portfolios SET name = %s WHERE id = %s AND owner_sub = %s RETURNING {PORTFOLIO_COLUMNS}",
        (name, portfolio_id, owner))).fetchone()


async def delete_portfolio(conn: AsyncConnection, owner: str, portfolio_id: int) -> bool:
    cursor = await conn.execute("DELETE FROM portfolios WHERE id = %s AND owner_sub = %s", (portfolio_id, owner))
    return cursor.rowcount == 1


async def list_transactions(conn: AsyncConnection, portfolio_id: int, limit: int, offset: int,
                            type: str | None) -> tuple[list[dict], int]:
    where = "portfolio_id = %s" + (" AND type = %s" if type else "")
    args = (portfolio_id, type) if type else (portfolio_id,)
    total = (await (await conn.execute(f"SELECT count(*) AS n FROM transactions WHERE {where}", args)
                    ).fetchone())["n"]
    rows = await (await conn.execute(
        f"SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE {where} ORDER BY executed_at, id LIMIT %s OFFSET %s",
        (*args, limit, offset))).fetchall()
    return rows, total


async def ledger(conn: AsyncConnection, portfolio_id: int, symbol: str | None = None) -> list[dict]:
    """All transactions in execution order (or only one symbol's buys and sells)."""
    if symbol is None:
        return await (await conn.execute(
            f"SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE portfolio_id = %s ORDER BY executed_at, id",
            (portfolio_id,))).fetchall()
    return await (await conn.execute(
        f"SELECT {TRANSACTION_COLUMNS} FROM transactions"
        " WHERE portfolio_id = %s AND symbol = %s AND type IN ('buy', 'sell') ORDER BY executed_at, id",
        (portfolio_id, symbol))).fetchall()


async def insert_transaction(conn: AsyncConnection, portfolio_id: int, type: str, symbol: str | None,
                             quantity: Decimal | None, price: Decimal | None, amount: Decimal | None,
                             fee: Decimal, executed_at: datetime) -> dict:
    return await (await conn.execute(
        "INSERT INTO transactions (portfolio_id, type, symbol, quantity, price, amount, fee, executed_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {TRANSACTION_COLUMNS}",
        (portfolio_id, type, symbol, quantity, price, amount, fee, executed_at))).fetchone()


async def latest_prices(conn: AsyncConnection, currency: str, symbols: list[str]) -> dict[str, tuple]:
    rows = await (await conn.execute(
        "SELECT DISTINCT ON (symbol) symbol, price, as_of FROM prices"
        " WHERE currency = %s AND symbol = ANY(%s) ORDER BY symbol, as_of DESC",
        (currency, symbols))).fetchall()
    return {row["symbol"]: (row["price"], row["as_of"]) for row in rows}


async def upsert_price(conn: AsyncConnection, symbol: str, currency: str, price: Decimal, as_of: datetime) -> dict:
    return await (await conn.execute(
        "INSERT INTO prices (symbol, currency, price, as_of) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (symbol, currency, as_of) DO UPDATE SET price = EXCLUDED.price"
        " RETURNING symbol, currency, price, as_of",
        (symbol, currency, price, as_of))).fetchone()


async def list_prices(conn: AsyncConnection, symbol: str, currency: str | None, limit: int,
                      offset: int) -> tuple[list[dict], int]:
    where = "symbol = %s" + (" AND currency = %s" if currency else "")
    args = (symbol, currency) if currency else (symbol,)
    total = (await (await conn.execute(f"SELECT count(*) AS n FROM prices WHERE {where}", args)).fetchone())["n"]
    rows = await (await conn.execute(
        f"SELECT symbol, currency, price, as_of FROM prices WHERE {where}"
        " ORDER BY as_of DESC, currency LIMIT %s OFFSET %s", (*args, limit, offset))).fetchall()
    return rows, total
