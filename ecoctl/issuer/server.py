"""The issuer's HTTP face: a Flask app whose routes hand every protocol step to Authlib.

Authentik's URL shape, so services and web apps configure it as they would Authentik:
`/application/o/<client_id>/.well-known/openid-configuration`, `.../jwks/`, `.../end-session/`,
and the shared `/application/o/authorize/`, `/token/`, `/userinfo/`; `/-/health/ready/` for
health checks. The sign-in page is the authorization endpoint's own (GET shows it, POST signs in).
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from ecoctl.issuer.store import Store

SCOPES = ["openid", "email", "profile", "offline_access"]


def create_app(config_path: Path):
    """The Flask app serving the issuer CONFIG_PATH describes."""
    from authlib.oauth2 import OAuth2Error
    from flask import Flask, abort, jsonify, redirect, request, session
    from joserfc.jwk import RSAKey

    from ecoctl.issuer import oauth, page

    store = Store.load(config_path)
    key = RSAKey.import_key(store.config["signing_key"], parameters={"kid": store.config["kid"], "use": "sig",
                                                                     "alg": "RS256"})
    app = Flask("ecoctl-signin")
    app.secret_key = store.config["session_secret"]
    app.config.update(SESSION_COOKIE_NAME="ecoctl_signin", SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_HTTPONLY=True)
    server, protector = oauth.build(app, store, key, store.config["kid"])
    base = store.base_url
    app.extensions["ecoctl.issuer"] = store  # reloaded on SIGHUP (__main__)

    @app.before_request
    def preflight():
        if request.method == "OPTIONS" and request.headers.get("Origin") in store.web_origins:
            return "", 204, {"Access-Control-Allow-Methods": "GET, POST",
                             "Access-Control-Allow-Headers": "Authorization, Content-Type",
                             "Access-Control-Max-Age": "600"}
        return None

    def known(slug: str) -> str:
        if slug not in store.clients:
            abort(404)
        return slug

    @app.after_request
    def headers(response):
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; " \
                                                      "form-action 'self'; frame-ancestors 'none'"
        if request.path.endswith(("/jwks/", "/openid-configuration")):
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif request.headers.get("Origin") in store.web_origins and not request.path.endswith("/authorize/"):
            response.headers["Access-Control-Allow-Origin"] = request.headers["Origin"]
            response.headers["Vary"] = "Origin"
        return response

    @app.get("/-/health/ready/")
    def ready():
        return jsonify(status="ok", config=store.digest)  # the config it runs with (`Local.reloaded`)

    @app.get("/application/o/<slug>/.well-known/openid-configuration")
    def discovery(slug):
        known(slug)
        return jsonify({
            "issuer": store.issuer(slug),
            "authorization_endpoint": f"{base}/application/o/authorize/",
            "token_endpoint": f"{base}/application/o/token/",
            "userinfo_endpoint": f"{base}/application/o/userinfo/",
            "end_session_endpoint": f"{base}/application/o/{slug}/end-session/",
            "jwks_uri": f"{base}/application/o/{slug}/jwks/",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name",
                                 "preferred_username", "email", "email_verified"],
            "request_parameter_supported": False,
        })

    @app.get("/application/o/<slug>/jwks/")
    def jwks(slug):
        known(slug)
        return jsonify({"keys": [key.as_dict(private=False)]})

    def signed_in():
        name = session.get("user")
        return store.users.get(name) if name else None

    @app.route("/application/o/authorize/", methods=["GET", "POST"])
    def authorize():
        user = signed_in()
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return server.handle_error_response(request, error)
        try:
            oauth.chosen_resource(grant.client, request.values.get("resource"))
        except OAuth2Error as error:  # told to the client, at its (checked) redirect URI
            error.redirect_uri, error.state = grant.redirect_uri, request.values.get("state")
            return server.handle_error_response(request, error)
        error, username = "", ""
        if request.method == "POST":
            username = request.form.get("username", "").strip()
            expected = session.get("csrf", "")
            if not expected or not hmac.compare_digest(expected, request.form.get("csrf", "")):
                error = "This sign-in form expired: please sign in again."
            elif (user := store.authenticate(username, request.form.get("password", ""))) is None:
                error = "Wrong user name or password."
            else:
                session.clear()
                session["user"] = user.name
                return server.create_authorization_response(grant=grant, grant_user=user)
        elif user is not None and grant.prompt != "login":
            return server.create_authorization_response(grant=grant, grant_user=user)
        session["csrf"] = secrets.token_urlsafe(24)
        body = page.sign_in(client=grant.client.client_id, ecosystem=store.config.get("ecosystem", ""),
                            error=error, csrf=session["csrf"], username=username, action=request.full_path)
        return body, 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.post("/application/o/token/")
    def token():
        return server.create_token_response()

    @app.route("/application/o/userinfo/", methods=["GET", "POST"])
    def userinfo():
        try:
            claims = protector.acquire_token(["openid"])
        except OAuth2Error as error:
            return server.handle_error_response(request, error)
        if claims.get("sub") not in store.users:
            return jsonify(error="invalid_token", error_description="not a user's token"), 401
        return jsonify(oauth.user_info(store, claims["sub"], claims.get("scope", "")))

    @app.route("/application/o/<slug>/end-session/", methods=["GET", "POST"])
    def end_session(slug):
        known(slug)
        try:
            response = server.create_endpoint_response("end_session")
        except OAuth2Error as error:
            return server.handle_error_response(request, error)
        if response is not None:
            return response
        session.clear()
        return page.signed_out(), 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.route("/")
    def root():
        return redirect(f"{base}/-/health/ready/")

    return app
