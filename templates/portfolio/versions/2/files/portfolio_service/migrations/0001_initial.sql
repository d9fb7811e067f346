-- Portfolios, their transaction ledger, and instrument prices.
-- Amounts are unconstrained NUMERIC (exact decimals); the API bounds their size.

CREATE TABLE portfolios (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_sub   text        NOT NULL,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portfolios_owner_idx ON portfolios (owner_sub, id);

CREATE TABLE transactions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    portfolio_id  bigint      NOT NULL REFERENCES portfolios (id) ON DELETE CASCADE,
    type          text        NOT NULL CHECK (type IN ('buy', 'sell', 'dividend', 'deposit', 'withdrawal')),
    symbol        text,
    quantity      numeric     CHECK (quantity > 0),
    price         numeric     CHECK (price >= 0),
    amount        numeric     CHECK (amount > 0),
    fee           numeric     NOT NULL DEFAULT 0 CHECK (fee >= 0),
    executed_at   timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (CASE
        WHEN type IN ('buy', 'sell') THEN symbol IS NOT NULL AND quantity IS NOT NULL AND price IS NOT NULL AND amount IS NULL
        WHEN type = 'dividend' THEN symbol IS NOT NULL AND amount IS NOT NULL AND quantity IS NULL AND price IS NULL
        ELSE symbol IS NULL AND amount IS NOT NULL AND quantity IS NULL AND price IS NULL
    END)
);
CREATE INDEX transactions_portfolio_idx ON transactions (portfolio_id, executed_at, id);

CREATE TABLE prices (
    symbol      text        NOT NULL,
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    as_of       timestamptz NOT NULL,
    price       numeric     NOT NULL CHECK (price >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, currency, as_of)
);
