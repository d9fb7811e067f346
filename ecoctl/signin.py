"""The development sign-in's config, rendered from the ecosystem for its program (`ecoctl.issuer`).

One JSON file (0600, the runtime user's, in the component's own folder): the issuer's base URL
(the origin people sign in at: the edge's sign-in origin when the edge is on, else
`http://127.0.0.1:<core.authentik.port>`, `core.authentik.url`'s local twin; so every issuer is the
one services are told), the signing key (`.ecoctl/keys/`), its clients
and its development users:

- every service (`client: confidential`, the default) is a confidential client whose secret is its
  `<SERVICE>_OIDC_CLIENT_SECRET` in .env: client_credentials, and the code flow to its
  `redirect_uris` (default: its origins), as with Authentik;
- every web app (`client: public`) a public client: authorization code + PKCE S256, refresh tokens,
  its `redirect_uris` (default: `/callback` on its origins) and `post_logout_redirect_uris`
  (default: its origins), and `calls`, the
  services its access tokens are for;
- each of `core.signin.users`, with a password generated into .env (`SIGNIN_<USER>_PASSWORD`).

Secrets are stored as salted hashes (werkzeug's); a hash already in the file is kept while it still
matches, so rendering twice writes the same file. The matches found are remembered in the state
folder (`VERIFIED_FILE`), so a render pays a PBKDF2 only for a new or changed secret.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ecoctl.local_auth import jwks_file, signing_key_file
from ecoctl.names import client_id, env_prefix, origins
from ecoctl.support.verified import Verified

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem

SESSION_SECRET = "SIGNIN_SESSION_SECRET"
HASH_METHOD = "pbkdf2:sha256:100000"
VERIFIED_FILE = "signin-verified.json"
"""In the state folder: the hash checks that passed (`support.verified`)."""
RELOADED = ("access_token_ttl", "clients", "ecosystem", "users")
"""What the running sign-in takes on SIGHUP, keeping its sessions and refresh tokens (the config
names them for it, `reloaded`); any other change (its signing key, port, issuer) restarts it."""


def password_key(user: str) -> str:
    """The .env key of a development user's password."""
    return f"SIGNIN_{env_prefix(user)}_PASSWORD"


def client_secret_key(service: str) -> str:
    """The .env key of SERVICE's OAuth2 client secret (the contract's `OIDC_CLIENT_SECRET`)."""
    return f"{env_prefix(service)}_OIDC_CLIENT_SECRET"


def secret_keys(ecosystem: "Ecosystem") -> list[str]:
    """The .env keys the development sign-in needs (none where it does not run)."""
    if not ecosystem.signin_runs:
        return []
    return [SESSION_SECRET, *(password_key(user) for user in ecosystem.core.signin.users)]


def clients(ecosystem: "Ecosystem") -> dict[str, dict]:
    """client_id -> what the issuer knows of it (secrets left out)."""
    found = {}
    for name, spec in ecosystem.services.items():
        if spec.client == "public":
            found[client_id(ecosystem.core.authentik.prefix, name)] = {
                "kind": "web", "redirect_uris": spec.redirect_uris or ecosystem.web_redirect_uris(name),
                "post_logout_redirect_uris": spec.post_logout_redirect_uris or ecosystem.origins(name),
                "calls": [client_id(ecosystem.core.authentik.prefix, api) for api in spec.calls]}
        else:
            found[client_id(ecosystem.core.authentik.prefix, name)] = {"kind": "service", "service": name,
                                                "redirect_uris": spec.redirect_uris or ecosystem.origins(name)}
    return found


def render(ecosystem: "Ecosystem", env: Mapping[str, str], state_dir, port: int, previous: str = "",
           host: str = "127.0.0.1") -> str:
    """The issuer's config as JSON text. PREVIOUS: the file as it is (its hashes are kept while
    they match). HOST: where it listens (a container's own interfaces: `CONTAINER_HOST`)."""
    from werkzeug.security import check_password_hash, generate_password_hash

    try:
        before = json.loads(previous) if previous else {}
    except ValueError:
        before = {}
    old_hashes = {**{f"client:{key}": value.get("secret_hash", "") for key, value in before.get("clients", {}).items()},
                  **{f"user:{key}": value.get("password_hash", "") for key, value in before.get("users", {}).items()}}
    verified = Verified(Path(state_dir) / VERIFIED_FILE)  # one PBKDF2 per changed secret, not per client

    def hashed(name: str, secret: str) -> str:
        old = old_hashes.get(name, "")
        if old and (verified.known(name, secret, old) or check_password_hash(old, secret)):
            verified.remember(name, secret, old)
            return old
        new = generate_password_hash(secret, method=HASH_METHOD)
        verified.remember(name, secret, new)
        return new

    rendered_clients = {}
    for client_id, spec in clients(ecosystem).items():
        service = spec.pop("service", None)
        if service is not None:
            secret = env.get(client_secret_key(service), "")
            spec["secret_hash"] = hashed(f"client:{client_id}", secret) if secret else ""
        rendered_clients[client_id] = spec
    users = {user: {"password_hash": hashed(f"user:{user}", env.get(password_key(user), "")),
                    "email": f"{user}@localhost"}
             for user in ecosystem.core.signin.users if env.get(password_key(user))}
    key_file = signing_key_file(state_dir)
    config = {
        "ecosystem": ecosystem.name,
        "base_url": ecosystem.sign_in_origin,  # the edge's sign-in origin when the edge is on
        "host": host,
        "port": port,
        "kid": json.loads(jwks_file(state_dir).read_text())["keys"][0]["kid"],
        "signing_key": key_file.read_text(),
        "session_secret": env.get(SESSION_SECRET, ""),
        "access_token_ttl": ecosystem.core.signin.access_token_ttl,
        "clients": rendered_clients,
        "users": users,
        "reloaded": list(RELOADED),
    }
    verified.save()
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def reloads(before: str, after: str) -> bool:
    """The component recipe's `reloads`: only what a SIGHUP takes (`RELOADED`) changed."""
    try:
        old, new = json.loads(before), json.loads(after)
    except ValueError:
        return False
    return ({key: value for key, value in old.items() if key not in RELOADED}
            == {key: value for key, value in new.items() if key not in RELOADED})


def config(place) -> str:
    """The component recipe's `config`: rendered for PLACE's ecosystem (a `components.Place`)."""
    previous = place.config.read_text() if place.config.is_file() else ""
    return render(place.ecosystem, place.env, place.state_dir, place.port, previous)


# -- in a container (`core.signin.in_containers`, development only) ---------------------------------
CONTAINER_HOST = "0.0.0.0"
"""In its container it listens on the container's interfaces: the stack's network reaches it by name,
and compose publishes its port on the host's 127.0.0.1 only."""
CONTAINER_DIR = "/etc/ecoctl-signin"
"""Where its container reads its files (`.ecoctl/signin/`, mounted read-only)."""
PACKAGES = ("authlib", "flask", "werkzeug", "joserfc")
"""What `ecoctl.issuer` imports: pinned in its container to the versions ecoctl itself runs with."""


def pinned_packages() -> str:
    """`authlib==X flask==Y ...`: the versions installed with ecoctl, which its container installs."""
    from importlib.metadata import version

    return " ".join(f"{name}=={version(name)}" for name in PACKAGES)


def container_files(place) -> dict[str, str]:
    """The files its container reads (relative path -> text, written 0600 by the runtime into
    `.ecoctl/signin/`): its config, listening on the container's interfaces at PLACE's port, and
    the issuer's own source (`ecoctl.issuer`, under `python/`), so the image is a plain Python one."""
    folder = Path(__file__).parent / "issuer"
    files = {"signin.json": render(place.ecosystem, place.env, place.state_dir, place.port,
                                   place.config.read_text() if place.config.is_file() else "", host=CONTAINER_HOST),
             "python/ecoctl/__init__.py": '"""ecoctl\'s development sign-in only (`python -m ecoctl.issuer`)."""\n'}
    files.update({f"python/ecoctl/issuer/{source.name}": source.read_text() for source in sorted(folder.glob("*.py"))})
    return files
