"""The service's PostgreSQL database: a connection pool from DATABASE_* and the SQL migrations in
`migrations/`, applied in file-name order as DATABASE_USER (the owner role, so the tables it
creates are covered by the default privileges that let readers of this database see them).

The service starts without its database; migrations run as soon as it answers. While it is away,
a request waits at most `database_timeout` for a connection (then 503); a failed connection attempt
is retried for RECONNECT_SECONDS only, after which the next request tries again, so the service is
back as soon as its database is (psycopg_pool's own retries back off to minutes).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .config import Settings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 7_320_451_889  # pg_advisory_xact_lock key: one replica migrates at a time
UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)
RECONNECT_SECONDS = 1.0


class Database:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.pool: AsyncConnectionPool | None = None
        self.migrated = False

    async def open(self) -> None:
        self.pool = AsyncConnectionPool(self.settings.conninfo(), min_size=1, reconnect_timeout=RECONNECT_SECONDS,
                                        max_size=max(1, self.settings.database_pool_size),
                                        timeout=self.settings.database_timeout, open=False,
                                        name="database",
                                        # no named prepared statements: they would not survive a
                                        # pooler in transaction mode (pgbouncer, core.postgres.pooler)
                                        kwargs={"prepare_threshold": None})
        await self.pool.open(wait=False)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection (in a transaction, committed on success), migrations applied first."""
        if not self.migrated:
            await self.migrate()
        async with self._pool().connection() as conn:
            yield conn

    async def check(self) -> None:
        """Raise one of UNAVAILABLE unless the database answers and is migrated."""
        async with self.connection() as conn:
            await conn.execute("SELECT 1")

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return their names."""
        applied = []
        async with self._pool().connection() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                               " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for path in sorted(MIGRATIONS.glob("*.sql")):
                if path.stem not in done:
                    await conn.execute(path.read_text(encoding="utf-8"))
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                    applied.append(path.stem)
        self.migrated = True
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        return applied

    def _pool(self) -> AsyncConnectionPool:
        if self.pool is None:
            raise RuntimeError("Database.open() was not called (is the app's lifespan running?)")
        return self.pool
