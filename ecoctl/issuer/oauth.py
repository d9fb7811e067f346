"""The Authlib authorization server: authorization code + PKCE (S256 only, required for public
clients), refresh tokens (rotated), client credentials, OpenID Connect ID tokens, RFC 9068 JWT
access tokens, RP-initiated logout.

Who a token is for (the audience rule, the same in every runtime): a service's client_credentials
token is the service's own (`iss` its application's issuer, `aud` its client id), as Authentik
issues it. A web app's access token is for an API it `calls`: `iss` and `aud` are that API's
issuer and client id (RFC 8707 `resource=<API client id>` at the authorization request chooses
among several; the first is the default), `azp` is the web app. An API the web app does not call
is refused at the authorization request (`invalid_target`), and its services refuse the token
(their audience). The ID token stays the web app's own (`iss` its issuer, `aud` its client id).
"""

from __future__ import annotations

import contextvars
import secrets
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint

from ecoctl.issuer.store import AuthorizationCode, Client, Store

CODE_TTL = 300
_resource: contextvars.ContextVar[str | None] = contextvars.ContextVar("resource", default=None)
"""The API the access token being issued is for (set while a grant issues it)."""


class InvalidTarget(InvalidRequestError):
    error = "invalid_target"


class S256Only(CodeChallenge):
    """PKCE with S256 only: `plain` is refused (and never advertised)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


def user_info(store: Store, name: str, scope: str) -> UserInfo:
    user = store.users[name]
    info = UserInfo(sub=user.name, preferred_username=user.name, name=user.name)
    if "email" in (scope or "").split():
        info["email"], info["email_verified"] = user.email, True
    return info


def chosen_resource(client: Client, requested: str | None) -> str | None:
    """The API a web app's access token is for: the one it asked for, if it calls it."""
    if not requested:
        return client.calls[0] if client.calls else None
    if requested not in client.calls:
        raise InvalidTarget(f"{client.client_id} does not call {requested}")
    return requested


def build(app, store: Store, key, kid: str) -> tuple[AuthorizationServer, ResourceProtector]:
    """The server for STORE, signing with KEY (a joserfc RSAKey) under KID."""
    from joserfc.jwk import KeySet

    key_set = KeySet([key])

    def query_client(client_id):
        return store.clients.get(client_id)

    def save_token(token, request):
        if "refresh_token" in token:
            store.save_refresh(token["refresh_token"], request.client.client_id, request.user.name,
                               token.get("scope", ""), _resource.get())

    class AccessTokens(JWTBearerTokenGenerator):
        def get_jwks(self):
            return key_set

        def get_extra_claims(self, client, grant_type, user, scope):
            api = _resource.get() if client.public else client.client_id
            claims = {"iss": store.issuer(api or client.client_id), "aud": api or client.client_id,
                      "azp": client.client_id, "nbf": int(time.time())}
            if user is not None:
                claims["preferred_username"] = user.name
            return claims

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    generator = AccessTokens(issuer=store.base_url, refresh_token_generator=lambda *args, **kwargs:
                             secrets.token_urlsafe(32),
                             expires_generator=lambda client, grant_type: store.access_token_ttl)
    for grant_type in ("authorization_code", "refresh_token", "client_credentials"):
        server.register_token_generator(grant_type, generator)

    class Code(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code, request):
            payload = request.payload
            resource = chosen_resource(request.client, payload.data.get("resource"))
            store.save_code(AuthorizationCode(
                code, request.client.client_id, payload.redirect_uri, payload.scope or "", request.user.name,
                payload.data.get("nonce"), payload.data.get("code_challenge"),
                payload.data.get("code_challenge_method") or ("S256" if payload.data.get("code_challenge") else None),
                resource, int(time.time()), time.time() + CODE_TTL))

        def query_authorization_code(self, code, client):
            return store.code(code, client.client_id)

        def delete_authorization_code(self, authorization_code):
            store.delete_code(authorization_code.code)

        def authenticate_user(self, authorization_code):
            _resource.set(authorization_code.resource)
            return store.users.get(authorization_code.user)

    class Refresh(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token):
            return store.refresh(refresh_token)

        def authenticate_user(self, refresh_token):
            _resource.set(refresh_token.resource)
            return store.users.get(refresh_token.user)

        def revoke_old_credential(self, refresh_token):
            store.revoke_refresh(refresh_token.token)

    class OpenID(OpenIDCode):
        def exists_nonce(self, nonce, request):
            return False

        def resolve_client_private_key(self, client):
            return key_set

        def get_client_algorithm(self, client):
            return "RS256"

        def get_encode_header(self, client):
            return {"alg": "RS256", "kid": kid}

        def get_client_claims(self, client):
            return {"iss": store.issuer(client.client_id), "aud": client.client_id,
                    "exp": int(time.time()) + store.access_token_ttl}

        def generate_user_info(self, user, scope):
            return user_info(store, user.name, scope)

    class EndSession(EndSessionEndpoint):
        def get_server_jwks(self):
            return key_set

        def end_session(self, end_session_request):
            from flask import session

            name = session.pop("user", None)
            if name:
                store.sign_out(name)

    server.register_grant(Code, [S256Only(required=True), OpenID(require_nonce=False)])
    server.register_grant(Refresh)
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_endpoint(EndSession)

    class Tokens(JWTBearerTokenValidator):
        """Our own access tokens, for userinfo: any of our applications' issuers."""

        def get_jwks(self):
            return key_set

        def validate_iss(self, claims, iss):
            return iss.startswith(f"{store.base_url}/application/o/")

    protector = ResourceProtector()
    protector.register_token_validator(Tokens(issuer=store.base_url, resource_server=None))
    return server, protector
