"""Request and response bodies. Amounts travel as decimal strings (numbers are accepted on input)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9.\-]{0,19}$"
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
# 14 integer digits and 10 decimal places at most: exact in NUMERIC, bounded in every sum and product.
AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,13})(\.[0-9]{1,10})?$"
AMOUNT_SCHEMA = {"anyOf": [{"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["12.5"]},
                           {"type": "number", "minimum": 0, "maximum": 99999999999999}]}
Positive = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=10, allow_inf_nan=False),
                     WithJsonSchema({**AMOUNT_SCHEMA, "description": "a decimal > 0"})]
NonNegative = Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=10, allow_inf_nan=False),
                        WithJsonSchema({**AMOUNT_SCHEMA, "description": "a decimal >= 0"})]
DecimalString = Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?$", examples=["1234.5"])]
TransactionType = Literal["buy", "sell", "dividend", "deposit", "withdrawal"]
Timestamp = Annotated[AwareDatetime, Field(ge=datetime.fromisoformat("1900-01-01T00:00:00+00:00"),
                                           le=datetime.fromisoformat("9000-01-01T00:00:00+00:00"))]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PortfolioIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    currency: Currency


class PortfolioPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class Portfolio(BaseModel):
    id: int
    name: str
    currency: str
    created_at: datetime


class Trade(BaseModel):
    """A buy or a sell of `quantity` units of `symbol` at `price` each, plus an optional `fee`."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["buy", "sell"]
    symbol: Symbol
    quantity: Positive
    price: NonNegative
    fee: NonNegative = Decimal(0)
    executed_at: Timestamp | None = None


class Dividend(BaseModel):
    """A dividend of `amount` received from `symbol`."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["dividend"]
    symbol: Symbol
    amount: Positive
    executed_at: Timestamp | None = None


class CashMovement(BaseModel):
    """Cash paid into (`deposit`) or taken out of (`withdrawal`) the portfolio."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["deposit", "withdrawal"]
    amount: Positive
    executed_at: Timestamp | None = None


TransactionIn = Annotated[Trade | Dividend | CashMovement, Field(discriminator="type")]


class Transaction(BaseModel):
    id: int
    type: TransactionType
    symbol: str | None
    quantity: DecimalString | None
    price: DecimalString | None
    amount: DecimalString | None
    fee: DecimalString
    executed_at: datetime


class Holding(BaseModel):
    symbol: str
    quantity: DecimalString
    average_cost: DecimalString
    cost_basis: DecimalString


class Holdings(BaseModel):
    portfolio_id: int
    currency: str
    items: list[Holding]


class HoldingValue(BaseModel):
    symbol: str
    quantity: DecimalString
    average_cost: DecimalString | None
    cost_basis: DecimalString
    price: DecimalString | None
    price_as_of: datetime | None
    market_value: DecimalString | None
    unrealized_gain: DecimalString | None
    realized_gain: DecimalString
    dividends: DecimalString


class Totals(BaseModel):
    market_value: DecimalString
    cost_basis: DecimalString
    unrealized_gain: DecimalString
    realized_gain: DecimalString
    dividends: DecimalString
    cash: DecimalString
    total_value: DecimalString
    unpriced_positions: int


class Valuation(BaseModel):
    portfolio_id: int
    currency: str
    holdings: list[HoldingValue]
    totals: Totals


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: Currency
    price: NonNegative
    as_of: Timestamp | None = None


class Price(BaseModel):
    symbol: str
    currency: str
    price: DecimalString
    as_of: datetime


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
