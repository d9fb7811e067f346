"""Settings from the environment: the variables ecoctl writes into the compose file and `.env`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from . import DEFAULT_DATABASE_NAME, DEFAULT_DATABASE_USER, DEFAULT_PORT


class ConfigError(RuntimeError):
    """A missing or malformed setting; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    issuer: str
    """OIDC_ISSUER, compared exactly with each token's `iss` (Authentik's ends with a slash)."""
    audience: str
    """OIDC_AUDIENCE, else OIDC_CLIENT_ID: each token's `aud` must contain it."""
    jwks_url: str | None = None
    jwks_file: str | None = None
    database_host: str = "localhost"
    database_port: int = 5432
    database_name: str = DEFAULT_DATABASE_NAME
    database_user: str = DEFAULT_DATABASE_USER
    database_password: str = ""
    database_sslmode: str = "prefer"
    database_pool_size: int = 5
    database_timeout: float = 2.0
    """Seconds a request waits for a database connection before its 503 (and connect_timeout)."""
    port: int = DEFAULT_PORT
    max_body_bytes: int = 1024 * 1024
    """MAX_REQUEST_BODY_BYTES: a larger request body is refused (413) before it is read."""
    jwks_max_age: float = 300.0
    jwks_min_refresh_interval: float = 10.0
    """Least time between two JWKS fetches caused by unknown key ids (a flood of forged kids)."""
    leeway: int = 30
    """Seconds of clock skew tolerated on `exp`, `nbf` and `iat`."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = _with_secret_files(os.environ if env is None else env)
        issuer = env.get("OIDC_ISSUER", "").strip()
        if not issuer:
            raise ConfigError("OIDC_ISSUER is not set (e.g. http://authentik:9000/application/o/NAME/)")
        audience = env.get("OIDC_AUDIENCE") or env.get("OIDC_CLIENT_ID")
        if not audience:
            raise ConfigError("OIDC_CLIENT_ID (or OIDC_AUDIENCE) is not set")
        jwks_file = env.get("OIDC_JWKS_FILE") or None
        jwks_url = None if jwks_file else env.get("OIDC_JWKS_URL") or issuer.rstrip("/") + "/jwks/"
        return cls(
            issuer=issuer,
            audience=audience,
            jwks_url=jwks_url,
            jwks_file=jwks_file,
            database_host=env.get("DATABASE_HOST", "localhost"),
            database_port=_int(env, "DATABASE_PORT", 5432),
            database_name=env.get("DATABASE_NAME", DEFAULT_DATABASE_NAME),
            database_user=env.get("DATABASE_USER", DEFAULT_DATABASE_USER),
            database_password=env.get("DATABASE_PASSWORD", ""),
            database_sslmode=env.get("DATABASE_SSLMODE", "prefer"),
            database_pool_size=_int(env, "DATABASE_POOL_SIZE", 5),
            port=_int(env, "PORT", DEFAULT_PORT),
            max_body_bytes=_int(env, "MAX_REQUEST_BODY_BYTES", 1024 * 1024),
        )

    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.database_host, port=self.database_port, dbname=self.database_name,
                             user=self.database_user, password=self.database_password,
                             sslmode=self.database_sslmode,
                             connect_timeout=max(1, int(self.database_timeout)))


SECRET_VARIABLES = ("DATABASE_PASSWORD", "OIDC_CLIENT_SECRET", "REDIS_PASSWORD")
"""The secrets of the service contract, each of which may come as NAME_FILE (a Docker secret)."""


def _with_secret_files(env: Mapping[str, str]) -> dict[str, str]:
    """`NAME_FILE=/run/secrets/...` (Docker secrets under the swarm runtime) gives NAME the file's
    content, for the contract's secrets only (other `*_FILE` variables are other programs'); a plain
    NAME wins when both are set."""
    env = dict(env)
    for name in SECRET_VARIABLES:
        key, path = f"{name}_FILE", env.get(f"{name}_FILE", "")
        if not env.get(name) and path.strip():
            try:
                with open(path.strip(), encoding="utf-8") as file:
                    env[name] = file.read().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{key}={path}: cannot read it ({exc.strerror})") from None
    return env


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
