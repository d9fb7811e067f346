"""Settings read from the environment variables every ecoctl service shares."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


class SettingsError(ValueError):
    pass


SECRET_VARIABLES = ("DATABASE_PASSWORD", "OIDC_CLIENT_SECRET", "REDIS_PASSWORD")
"""The secrets of the service contract, each of which may come as NAME_FILE (a Docker secret)."""


def with_secret_files(env: dict[str, str]) -> dict[str, str]:
    """`NAME_FILE=/run/secrets/...` (Docker secrets, the swarm runtime) gives NAME the file's content
    for the contract's secrets only (other `*_FILE` variables belong to other programs); a plain
    NAME wins when both are set."""
    for name in SECRET_VARIABLES:
        key, path = f"{name}_FILE", env.get(f"{name}_FILE", "")
        if not env.get(name, "").strip() and path.strip():
            try:
                with open(path.strip(), encoding="utf-8") as file:
                    env[name] = file.read().rstrip("\r\n")
            except OSError as exc:
                raise SettingsError(f"{key}={path}: cannot read it ({exc.strerror})") from None
    return env


@dataclass(frozen=True)
class Settings:
    database_host: str
    database_port: int
    database_name: str
    database_user: str
    database_password: str = field(repr=False)
    oidc_issuer: str
    oidc_audience: str
    oidc_jwks_url: str | None = None
    oidc_jwks_file: str | None = None
    oidc_accepted: tuple[tuple[str, str, str], ...] = ()
    """OIDC_ACCEPTED_CLIENTS: (issuer, audience, JWKS URL) of each web app granted this API whose tokens
    come under its own issuer (Authentik's per-application issuers): accepted besides our own."""
    admin_scope: str = "portfolio:admin"
    admin_group: str = "portfolio-admins"
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout_seconds: float = 2.0
    """How long a request waits for a database connection before its 503 (and the connect timeout)."""
    max_body_bytes: int = 1024 * 1024
    """MAX_REQUEST_BODY_BYTES: a larger request body is refused (413) before it is read."""
    jwks_cache_seconds: float = 3600.0
    jwks_min_refresh_seconds: float = 10.0
    token_leeway_seconds: float = 10.0
    run_migrations: bool = True

    @property
    def jwks_source(self) -> str:
        """The JWKS file, the explicit URL, or the issuer's `jwks/` endpoint, in that order."""
        if self.oidc_jwks_file:
            return self.oidc_jwks_file
        return self.oidc_jwks_url or self.oidc_issuer.rstrip("/") + "/jwks/"

    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.database_host, port=self.database_port,
                             dbname=self.database_name, user=self.database_user,
                             password=self.database_password, application_name="portfolio",
                             connect_timeout=max(1, round(self.pool_timeout_seconds)))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = with_secret_files(dict(os.environ if env is None else env))

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"{name} is not set: export it (ecoctl sets it for the services it runs)")
            return value

        client_id = env.get("OIDC_CLIENT_ID", "").strip()
        audience = env.get("OIDC_AUDIENCE", "").strip() or client_id
        if not audience:
            raise SettingsError("neither OIDC_AUDIENCE nor OIDC_CLIENT_ID is set: export the service's client id")
        port = env.get("DATABASE_PORT", "5432").strip()
        if not port.isdigit():
            raise SettingsError(f"DATABASE_PORT must be a number, not {port!r}")
        max_body = env.get("MAX_REQUEST_BODY_BYTES", "").strip() or str(cls.max_body_bytes)
        if not max_body.isdigit():
            raise SettingsError(f"MAX_REQUEST_BODY_BYTES must be a number of bytes, not {max_body!r}")
        return cls(
            database_host=env.get("DATABASE_HOST", "127.0.0.1").strip(),
            database_port=int(port),
            database_name=env.get("DATABASE_NAME", "portfolio_db").strip(),
            database_user=env.get("DATABASE_USER", "portfolio_user").strip(),
            database_password=required("DATABASE_PASSWORD"),
            oidc_issuer=required("OIDC_ISSUER"),
            oidc_audience=audience,
            oidc_jwks_url=env.get("OIDC_JWKS_URL", "").strip() or None,
            oidc_jwks_file=env.get("OIDC_JWKS_FILE", "").strip() or None,
            oidc_accepted=_accepted_clients(env.get("OIDC_ACCEPTED_CLIENTS", "").strip()),
            max_body_bytes=int(max_body),
            run_migrations=env.get("PORTFOLIO_RUN_MIGRATIONS", "1").strip().lower() not in ("0", "false", "no"),
        )


def _accepted_clients(raw: str) -> tuple[tuple[str, str, str], ...]:
    """OIDC_ACCEPTED_CLIENTS: a JSON list of {"issuer", "audience", "jwks_url"} (empty: none)."""
    if not raw:
        return ()
    import json

    try:
        entries = json.loads(raw)
        found = tuple((entry["issuer"], entry["audience"], entry["jwks_url"]) for entry in entries)
    except (ValueError, TypeError, KeyError) as exc:
        raise SettingsError('OIDC_ACCEPTED_CLIENTS must be a JSON list of {"issuer", "audience", "jwks_url"} '
                            f"({type(exc).__name__})") from None
    if not all(isinstance(value, str) and value for entry in found for value in entry):
        raise SettingsError("OIDC_ACCEPTED_CLIENTS: issuer, audience and jwks_url must be non-empty strings")
    return found
