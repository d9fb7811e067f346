"""The HTTP API: portfolios (each caller sees only their own), their ledger, holdings, valuation, prices."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from . import db
from .auth import InvalidToken, KeysUnavailable, Principal
from .models import (SYMBOL_PATTERN, Currency, Health, Holdings, Page, Portfolio, PortfolioIn, PortfolioPatch,
                     Price, PriceIn, Trade, Transaction, TransactionIn, TransactionType, Valuation)
from .problems import ProblemError, responses
from .valuation import CONTEXT, Ledger, LedgerCache, holdings, replay, valuation

log = logging.getLogger("portfolio_service")
router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="An access token from the ecosystem's OIDC issuer")

PortfolioId = Annotated[int, Path(ge=1, le=2**63 - 1)]
SymbolPath = Annotated[str, Path(pattern=SYMBOL_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="items to skip")]
OVERSOLD = "urn:problem-type:portfolio:insufficient-holdings"


async def current_user(request: Request,
                       _credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Principal:
    principal = getattr(request.state, "principal", None)  # checked by the gate, before the body was read
    if principal is not None:
        return principal
    try:
        return await request.app.state.auth.authenticate(request.headers.get("authorization"))
    except InvalidToken as exc:
        challenge = 'Bearer error="invalid_token"' if request.headers.get("authorization") else "Bearer"
        raise ProblemError(401, str(exc), headers={"WWW-Authenticate": challenge}) from None
    except KeysUnavailable as exc:
        log.warning("token not checked: %s", exc)
        raise ProblemError(503, "the identity provider's signing keys are unavailable; retry later") from None


async def admin_user(request: Request, user: Principal = Depends(current_user)) -> Principal:
    if not user.is_admin(request.app.state.settings):
        settings = request.app.state.settings
        raise ProblemError(403, f"writing prices needs the scope {settings.admin_scope!r}"
                                f" or membership of the group {settings.admin_group!r}")
    return user


User = Annotated[Principal, Depends(current_user)]
Admin = Annotated[Principal, Depends(admin_user)]


def pool(request: Request):
    return request.app.state.pool


def text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def transaction_out(row: dict) -> dict:
    return {**row, **{key: text(row[key]) for key in ("quantity", "price", "amount", "fee")}}


def price_out(row: dict) -> dict:
    return {**row, "price": text(row["price"])}


def not_found(portfolio_id: int) -> ProblemError:
    return ProblemError(404, f"portfolio {portfolio_id} does not exist")


async def owned_portfolio(conn, user, portfolio_id: int, lookup=db.get_portfolio) -> dict:
    """The caller's portfolio; another user's is a 404 exactly like a missing one."""
    portfolio = await lookup(conn, user.sub, portfolio_id)
    if portfolio is None:
        raise not_found(portfolio_id)
    return portfolio


@router.get("/healthz", response_model=Health, tags=["operations"], responses=responses(503))
async def healthz(request: Request) -> dict:
    try:
        async with pool(request).connection(timeout=2.0) as conn:
            await db.ping(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        log.warning("health check failed: %s", exc)
        raise ProblemError(503, "the database does not answer") from None
    return {"status": "ok", "database": "ok"}


@router.get("/portfolios", response_model=Page[Portfolio], tags=["portfolios"], responses=responses(401))
async def list_portfolios(request: Request, user: User, limit: Limit = 50, offset: Offset = 0) -> dict:
    async with pool(request).connection() as conn:
        rows, total = await db.list_portfolios(conn, user.sub, limit, offset)
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


@router.post("/portfolios", response_model=Portfolio, status_code=201, tags=["portfolios"],
             responses=responses(401, 422))
async def create_portfolio(request: Request, response: Response, user: User, body: PortfolioIn) -> dict:
    async with pool(request).connection() as conn:
        row = await db.create_portfolio(conn, user.sub, body.name, body.currency)
    request.app.state.metrics.portfolios.inc()
    response.headers["Location"] = f"/portfolios/{row['id']}"
    return row


@router.get("/portfolios/{portfolio_id}", response_model=Portfolio, tags=["portfolios"],
            responses=responses(401, 404, 422))
async def get_portfolio(request: Request, user: User, portfolio_id: PortfolioId) -> dict:
    async with pool(request).connection() as conn:
        return await owned_portfolio(conn, user, portfolio_id)


@router.patch("/portfolios/{portfolio_id}", response_model=Portfolio, tags=["portfolios"],
              responses=responses(401, 404, 422))
async def rename_portfolio(request: Request, user: User, portfolio_id: PortfolioId, body: PortfolioPatch) -> dict:
    async with pool(request).connection() as conn:
        row = await db.rename_portfolio(conn, user.sub, portfolio_id, body.name)
    if row is None:
        raise not_found(portfolio_id)
    return row


@router.delete("/portfolios/{portfolio_id}", status_code=204, response_class=Response, tags=["portfolios"],
               responses=responses(401, 404, 422))
async def delete_portfolio(request: Request, user: User, portfolio_id: PortfolioId) -> Response:
    async with pool(request).connection() as conn:
        if not await db.delete_portfolio(conn, user.sub, portfolio_id):
            raise not_found(portfolio_id)
    return Response(status_code=204)


@router.get("/portfolios/{portfolio_id}/transactions", response_model=Page[Transaction], tags=["transactions"],
            responses=responses(401, 404, 422))
async def list_transactions(request: Request, user: User, portfolio_id: PortfolioId, limit: Limit = 50,
                            offset: Offset = 0, type: TransactionType | None = None) -> dict:
    async with pool(request).connection() as conn:
        await owned_portfolio(conn, user, portfolio_id)
        rows, total = await db.list_transactions(conn, portfolio_id, limit, offset, type)
    return {"items": [transaction_out(row) for row in rows], "total": total, "limit": limit, "offset": offset}


@router.post("/portfolios/{portfolio_id}/transactions", response_model=Transaction, status_code=201,
             tags=["transactions"], responses=responses(401, 404, 422))
async def add_transaction(request: Request, response: Response, user: User, portfolio_id: PortfolioId,
                          body: TransactionIn) -> dict:
    executed_at = body.executed_at or datetime.now(timezone.utc)
    async with pool(request).connection() as conn, conn.transaction():
        if await db.lock_portfolio(conn, user.sub, portfolio_id) is None:
            raise not_found(portfolio_id)
        if body.type == "sell":
            await check_sell(request, conn, portfolio_id, body, executed_at)
        row = await db.insert_transaction(
            conn, portfolio_id, body.type, getattr(body, "symbol", None), getattr(body, "quantity", None),
            getattr(body, "price", None), getattr(body, "amount", None), getattr(body, "fee", Decimal(0)),
            executed_at)
    request.app.state.metrics.transactions.labels(body.type).inc()
    response.headers["Location"] = f"/portfolios/{portfolio_id}/transactions/{row['id']}"
    return transaction_out(row)


async def check_sell(request: Request, conn, portfolio_id: int, body: Trade, executed_at: datetime) -> None:
    """Replay the symbol's trades with this sell in its place: refuse it if any sell then exceeds the holding."""
    trades = await db.trades(conn, portfolio_id, body.symbol)
    new = {"type": "sell", "quantity": body.quantity}
    timeline = [row for row in trades if row["executed_at"] <= executed_at] + [new]
    timeline += [row for row in trades if row["executed_at"] > executed_at]
    held = Decimal(0)
    with localcontext(CONTEXT):
        for row in timeline:
            if row["type"] == "buy":
                held += row["quantity"]
            elif row["quantity"] <= held:
                held -= row["quantity"]
            else:
                request.app.state.metrics.refused_sells.inc()
                detail = (f"cannot sell {text(body.quantity)} {body.symbol}: {text(held)} held at that time"
                          if row is new else
                          f"selling {text(body.quantity)} {body.symbol} then would leave a later sell uncovered")
                raise ProblemError(422, detail, title="Insufficient holdings", type=OVERSOLD, symbol=body.symbol,
                                   held=text(held) if row is new else None, requested=text(body.quantity))


def ledger_cache(request: Request) -> LedgerCache:
    """The app's cache of replayed ledgers (one per app: a test's fresh database starts a fresh cache)."""
    state = request.app.state
    cache = getattr(state, "ledger_cache", None)
    if cache is None:
        cache = state.ledger_cache = LedgerCache()
    return cache


async def replayed_ledger(request: Request, conn, portfolio: dict) -> Ledger:
    """The portfolio's replayed ledger, from the app's cache while its `ledger_version` is the one just read
    (the version is read before the transactions, so a concurrent write can only make the cached ledger
    newer than its version says — and a newer version is never served from that entry)."""
    cache = ledger_cache(request)
    ledger = cache.get(portfolio["id"], portfolio["ledger_version"])
    if ledger is None:
        ledger = replay(await db.ledger(conn, portfolio["id"]))
        cache.put(portfolio["id"], portfolio["ledger_version"], ledger)
    return ledger


@router.get("/portfolios/{portfolio_id}/holdings", response_model=Holdings, tags=["valuation"],
            responses=responses(401, 404, 422))
async def get_holdings(request: Request, user: User, portfolio_id: PortfolioId) -> dict:
    async with pool(request).connection() as conn:
        portfolio = await owned_portfolio(conn, user, portfolio_id, db.get_portfolio_version)
        ledger = await replayed_ledger(request, conn, portfolio)
    return {"portfolio_id": portfolio_id, "currency": portfolio["currency"], "items": holdings(ledger)}


@router.get("/portfolios/{portfolio_id}/valuation", response_model=Valuation, tags=["valuation"],
            responses=responses(401, 404, 422))
async def get_valuation(request: Request, user: User, portfolio_id: PortfolioId) -> dict:
    cache = ledger_cache(request)
    symbols = cache.symbols(portfolio_id)
    async with pool(request).connection() as conn:
        # one query when the ledger is kept: the portfolio, its version, and the prices of its symbols
        portfolio = await db.get_portfolio_prices(conn, user.sub, portfolio_id, symbols)
        if portfolio is None:
            raise not_found(portfolio_id)
        ledger = await replayed_ledger(request, conn, portfolio)
        prices = portfolio["prices"]
        if list(ledger.positions) != symbols:  # replayed just now: read the prices of its symbols
            prices = await db.latest_prices(conn, portfolio["currency"], list(ledger.positions))
    # the rendered answer is kept with the ledger while the prices it used are the latest
    key = (portfolio["currency"], sorted(prices.items()))
    body = cache.answer(portfolio_id, ledger, key)
    if body is None:
        answer = {"portfolio_id": portfolio_id, "currency": portfolio["currency"], **valuation(ledger, prices)}
        body = Valuation.model_validate(answer).model_dump_json().encode()
        cache.keep_answer(portfolio_id, ledger, key, body)
    return Response(body, media_type="application/json")


@router.post("/instruments/{symbol}/prices", response_model=Price, status_code=201, tags=["prices"],
             responses=responses(401, 403, 422))
async def add_price(request: Request, _admin: Admin, symbol: SymbolPath, body: PriceIn) -> dict:
    as_of = body.as_of or datetime.now(timezone.utc)
    async with pool(request).connection() as conn:
        row = await db.upsert_price(conn, symbol, body.currency, body.price, as_of)
    return price_out(row)


@router.get("/instruments/{symbol}/prices", response_model=Page[Price], tags=["prices"],
            responses=responses(401, 422))
async def list_prices(request: Request, _user: User, symbol: SymbolPath, currency: Currency | None = None,
                      limit: Limit = 50, offset: Offset = 0) -> dict:
    async with pool(request).connection() as conn:
        rows, total = await db.list_prices(conn, symbol, currency, limit, offset)
    return {"items": [price_out(row) for row in rows], "total": total, "limit": limit, "offset": offset}
