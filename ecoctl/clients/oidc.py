"""An OpenID Connect issuer's token endpoint over HTTP (Authentik's, or the local runtime's
development sign-in, which shares its URL shape): a service's token by client_credentials, and a
development user's by the authorization code flow with PKCE through the sign-in form."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from ecoctl.errors import EcoctlError


def _unreachable(what: str, url: str, exc: Exception) -> EcoctlError:
    return EcoctlError(f"{what} does not answer at {url} ({type(exc).__name__}): run `ecoctl up`, "
                       "then ask again")


def _error_of(response) -> str:
    try:
        body = response.json()
        return body.get("error_description") or body.get("error") or response.text[:200]
    except ValueError:
        return response.text.strip()[:200] or str(response.status_code)


def client_credentials(base_url: str, client_id: str, client_secret: str, scope: str, what: str) -> str:
    """An access token for CLIENT_ID from `<base_url>/application/o/token/` (client_credentials);
    WHAT names the issuer in messages."""
    import httpx

    url = f"{base_url}/application/o/token/"
    try:
        response = httpx.post(url, data={"grant_type": "client_credentials", "scope": scope},
                              auth=(client_id, client_secret), timeout=15)
    except httpx.HTTPError as exc:
        raise _unreachable(what, url, exc) from None
    if response.status_code != 200:
        raise EcoctlError(f"{what} refused a token for {client_id} ({response.status_code}: {_error_of(response)}): "
                          "run `ecoctl apply` so it knows the client's secret in .env")
    return response.json()["access_token"]


def user_token(base_url: str, client_id: str, client_secret: str, redirect_uri: str, user: str, password: str,
               scope: str, what: str) -> str:
    """A development USER's access token for CLIENT_ID: the authorization request, the sign-in
    form posted as a browser would, the code exchanged with PKCE (S256) and the client's secret."""
    import httpx

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
             "state": secrets.token_urlsafe(8), "code_challenge": challenge, "code_challenge_method": "S256"}
    authorize = f"{base_url}/application/o/authorize/?{urlencode(query)}"
    try:
        with httpx.Client(follow_redirects=False, timeout=15) as browser:
            form = browser.get(authorize)
            action = re.search(r'<form method="post" action="([^"]+)"', form.text)
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            if form.status_code != 200 or not action or not csrf:
                raise EcoctlError(f"{what} did not show its sign-in form for {client_id} "
                                  f"({form.status_code}: {_error_of(form)}): run `ecoctl up`")
            answer = browser.post(urljoin(base_url, action.group(1).replace("&amp;", "&")),
                                  data={"csrf": csrf.group(1), "username": user, "password": password})
            code = parse_qs(urlsplit(answer.headers.get("location", "")).query).get("code")
            if answer.status_code != 302 or not code:
                raise EcoctlError(f"{what} did not sign {user} in: the password in .env is not the one it "
                                  "knows: run `ecoctl up` so it reads .env again")
            response = browser.post(f"{base_url}/application/o/token/", auth=(client_id, client_secret), data={
                "grant_type": "authorization_code", "code": code[0], "redirect_uri": redirect_uri,
                "code_verifier": verifier})
    except httpx.HTTPError as exc:
        raise _unreachable(what, base_url, exc) from None
    if response.status_code != 200:
        raise EcoctlError(f"{what} refused {user}'s token for {client_id} ({_error_of(response)}): run `ecoctl up`")
    return response.json()["access_token"]
