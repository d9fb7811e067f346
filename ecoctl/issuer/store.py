"""The issuer's state: its config (clients, users, key) as Authlib's models, and the grants it
hands out (codes, refresh tokens), kept in memory (a restart signs everyone out; a reload of the
config, on SIGHUP, keeps them)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oidc.core import AuthorizationCodeMixin

def origin(uri: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


SERVICE_GRANTS = ("client_credentials", "authorization_code", "refresh_token")
WEB_GRANTS = ("authorization_code", "refresh_token")


@dataclass
class User:
    name: str
    password_hash: str
    email: str

    def get_user_id(self) -> str:
        return self.name


@dataclass
class Client(ClientMixin):
    """A service's confidential client (client_credentials; the authorization code flow too, as
    Authentik allows, which `ecoctl token SERVICE --user USER` takes) or a web app's public one (authorization
    code + PKCE, refresh tokens)."""

    client_id: str
    kind: str
    """`service` or `web`."""
    secret_hash: str = ""
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    """web: the client ids of the APIs its access tokens are for (the first is the default)."""

    @property
    def public(self) -> bool:
        return self.kind == "web"

    @property
    def client_metadata(self) -> dict:
        return {"post_logout_redirect_uris": self.post_logout_redirect_uris}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        from werkzeug.security import check_password_hash

        return bool(self.secret_hash) and check_password_hash(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint != "token":
            return True
        return method == "none" if self.public else method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (WEB_GRANTS if self.public else SERVICE_GRANTS)


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    resource: str | None
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


@dataclass
class RefreshToken(TokenMixin):
    token: str
    client_id: str
    user: str
    scope: str
    resource: str | None
    expires_at: float
    revoked: bool = False

    def check_client(self, client) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked


class Store:
    """The config (read at the start, its `reloaded` keys again on each `reload`) and the grants
    handed out since the start."""

    def __init__(self, config: dict, digest: str = ""):
        self.base_url: str = config["base_url"].rstrip("/")
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._lock = threading.Lock()
        self._reloading = threading.Lock()  # one reload at a time, each of the file as it is then
        self._take(config, digest)

    def _take(self, config: dict, digest: str) -> None:
        self.config, self.digest = config, digest
        """`digest`: the sha256 of the config file's text, told by the health check."""
        self.clients = {client_id: Client(client_id, **spec) for client_id, spec in config["clients"].items()}
        self.users = {name: User(name, spec["password_hash"], spec.get("email", f"{name}@localhost"))
                      for name, spec in config["users"].items()}
        self.access_token_ttl = int(config.get("access_token_ttl", 300))
        self.refresh_token_ttl = int(config.get("refresh_token_ttl", 86400))
        self.web_origins = {origin(uri) for client in self.clients.values() if client.public
                            for uri in client.redirect_uris + client.post_logout_redirect_uris}
        """Web apps' origins: their scripts may call discovery, JWKS, token and userinfo (CORS)."""

    @classmethod
    def load(cls, path: Path) -> "Store":
        text = Path(path).read_text()
        return cls(json.loads(text), hashlib.sha256(text.encode()).hexdigest())

    def reload(self, path: Path) -> str:
        """The config at PATH taken again, codes, sessions and refresh tokens kept, when only what
        it names `reloaded` changed (clients, users): else nothing changes. What happened, in a line."""
        with self._reloading:
            try:
                text = Path(path).read_text()
                config = json.loads(text)
            except (OSError, ValueError) as error:
                return f"the config was not reloaded: {error}"
            kept = set(config.get("reloaded", ()))
            if {k: v for k, v in config.items() if k not in kept} != {
                    k: v for k, v in self.config.items() if k not in kept}:
                return "the config was not reloaded: more than its clients and users changed (restart to take it)"
            with self._lock:
                self._take(config, hashlib.sha256(text.encode()).hexdigest())
            return f"reloaded the config ({len(self.clients)} clients, {len(self.users)} users)"

    def issuer(self, client_id: str) -> str:
        """An application's issuer, as Authentik spells it."""
        return f"{self.base_url}/application/o/{client_id}/"

    def authenticate(self, name: str, password: str) -> User | None:
        from werkzeug.security import check_password_hash

        user = self.users.get(name)
        return user if user and check_password_hash(user.password_hash, password) else None

    # -- codes -------------------------------------------------------------------------------
    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            now = time.time()
            self._codes = {key: value for key, value in self._codes.items() if value.expires_at > now}
            self._codes[code.code] = code

    def code(self, code: str, client_id: str) -> AuthorizationCode | None:
        with self._lock:
            found = self._codes.get(code)
        if found is None or found.client_id != client_id or found.expires_at <= time.time():
            return None
        return found

    def delete_code(self, code: str) -> None:
        with self._lock:
            self._codes.pop(code, None)

    # -- refresh tokens ----------------------------------------------------------------------
    def save_refresh(self, token: str, client_id: str, user: str, scope: str, resource: str | None) -> None:
        with self._lock:
            self._refresh[token] = RefreshToken(token, client_id, user, scope, resource,
                                                time.time() + self.refresh_token_ttl)

    def refresh(self, token: str) -> RefreshToken | None:
        with self._lock:
            found = self._refresh.get(token)
        return found if found and not found.is_revoked() and not found.is_expired() else None

    def revoke_refresh(self, token: str) -> None:
        with self._lock:
            if token in self._refresh:
                self._refresh[token].revoked = True

    def sign_out(self, user: str) -> None:
        """Every refresh token of USER revoked (end-session)."""
        with self._lock:
            for token in self._refresh.values():
                if token.user == user:
                    token.revoked = True
