"""The development sign-in's config as `ecoctl.signin` renders it, the .env keys it needs, the contract
services and web apps get with it, and what ecosystem.yaml accepts for web apps."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from werkzeug.security import check_password_hash

from ecoctl import contract, signin
from ecoctl.local_auth import ensure_signing_key
from ecoctl.model import Ecosystem
from ecoctl.support.typed import Invalid


def model(runtime: str = "local", **core) -> Ecosystem:
    return Ecosystem.from_data({
        "name": "demo", "runtime": runtime,
        "core": {"authentik": {"port": 9100, "prefix": "demo-"}, "signin": {"users": ["dev", "alice"]}, **core},
        "services": {
            "portfolio": {"port": 8000, "template": "portfolio"},
            "shop-web": {"port": 3000, "client": "public", "calls": ["portfolio"]},
            "admin-web": {"port": 3002, "client": "public", "redirect_uris": ["http://127.0.0.1:3002/callback"],
                          "post_logout_redirect_uris": ["http://127.0.0.1:3002/bye"]},
        }})


ENV = {signin.SESSION_SECRET: "session", signin.password_key("dev"): "dev-pass",
       signin.password_key("alice"): "alice-pass", signin.client_secret_key("portfolio"): "portfolio-secret"}


@pytest.fixture
def state(tmp_path):
    ensure_signing_key(SimpleNamespace(state_dir=tmp_path))
    return tmp_path


def test_clients_users_and_key(state):
    text = signin.render(model(), ENV, state, 9100)
    config = json.loads(text)
    assert config["base_url"] == "http://127.0.0.1:9100" and config["host"] == "127.0.0.1"
    assert config["signing_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert config["kid"] == json.loads((state / "keys/jwks.json").read_text())["keys"][0]["kid"]
    service = config["clients"]["demo-portfolio"]
    assert service["kind"] == "service" and check_password_hash(service["secret_hash"], "portfolio-secret")
    assert service["redirect_uris"] == ["http://127.0.0.1:8000/", "http://localhost:8000/"]
    assert config["clients"]["demo-shop-web"] == {
        "kind": "web", "calls": ["demo-portfolio"],
        "redirect_uris": ["http://127.0.0.1:3000/callback", "http://localhost:3000/callback"],
        "post_logout_redirect_uris": ["http://127.0.0.1:3000/", "http://localhost:3000/"]}
    admin = config["clients"]["demo-admin-web"]
    assert (admin["redirect_uris"], admin["post_logout_redirect_uris"], admin["calls"]) == (
        ["http://127.0.0.1:3002/callback"], ["http://127.0.0.1:3002/bye"], [])
    assert "secret_hash" not in admin
    assert set(config["users"]) == {"dev", "alice"}
    assert check_password_hash(config["users"]["alice"]["password_hash"], "alice-pass")
    for secret in ("dev-pass", "alice-pass", "portfolio-secret"):
        assert secret not in text  # only hashes


def test_rendering_again_writes_the_same_file_until_a_secret_changes(state):
    first = signin.render(model(), ENV, state, 9100)
    assert signin.render(model(), ENV, state, 9100, previous=first) == first
    rotated = signin.render(model(), {**ENV, signin.password_key("dev"): "new"}, state, 9100, previous=first)
    dev = json.loads(rotated)["users"]["dev"]["password_hash"]
    assert check_password_hash(dev, "new") and not check_password_hash(dev, "dev-pass")
    assert json.loads(rotated)["users"]["alice"] == json.loads(first)["users"]["alice"]


def test_a_render_checks_only_the_secrets_that_changed_since_the_last(state, monkeypatch):
    """The matches found are remembered (0600, beside .env): a render with nothing changed runs no
    PBKDF2; a rotated secret, or a hash changed in the file, is checked (and hashed) again."""
    import werkzeug.security

    first = signin.render(model(), ENV, state, 9100)
    assert oct((state / signin.VERIFIED_FILE).stat().st_mode & 0o777) == "0o600"
    slow = []
    real = werkzeug.security.check_password_hash
    monkeypatch.setattr(werkzeug.security, "check_password_hash",
                        lambda stored, secret: slow.append(secret) or real(stored, secret))
    assert signin.render(model(), ENV, state, 9100, previous=first) == first and slow == []
    rotated = signin.render(model(), {**ENV, signin.password_key("dev"): "new"}, state, 9100, previous=first)
    assert slow == ["new"]  # the old hash was checked against the new secret, and failed
    assert check_password_hash(json.loads(rotated)["users"]["dev"]["password_hash"], "new")
    edited = json.loads(first)
    edited["users"]["alice"]["password_hash"] = edited["users"]["dev"]["password_hash"]  # not alice's
    slow.clear()
    again = json.loads(signin.render(model(), ENV, state, 9100, previous=json.dumps(edited)))
    assert "alice-pass" in slow and check_password_hash(again["users"]["alice"]["password_hash"], "alice-pass")


def test_a_user_without_a_password_yet_cannot_sign_in(state):
    env = {key: value for key, value in ENV.items() if key != signin.password_key("alice")}
    assert set(json.loads(signin.render(model(), env, state, 9100))["users"]) == {"dev"}


def test_env_keys_only_where_the_sign_in_runs():
    assert signin.secret_keys(model()) == ["SIGNIN_SESSION_SECRET", "SIGNIN_DEV_PASSWORD", "SIGNIN_ALICE_PASSWORD"]
    assert signin.secret_keys(model("docker")) == []
    external = model(authentik={"url": "https://auth.example.com", "prefix": "demo-"})
    assert signin.secret_keys(external) == [] and not external.signin_runs
    assert set(signin.secret_keys(model())) <= set(contract.secret_keys(model()))


@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_the_contract_names_the_jwks_url_in_every_runtime(runtime):
    target = "local" if runtime == "local" else "compose"
    env = contract.service_environment(model(runtime), "portfolio", target, ENV)
    assert "OIDC_JWKS_FILE" not in env
    assert env["OIDC_ISSUER"] == "http://127.0.0.1:9100/application/o/demo-portfolio/"
    jwks = {"local": "http://127.0.0.1:9100/application/o/demo-portfolio/jwks/",
            "docker": "http://authentik-server:9000/application/o/demo-portfolio/jwks/"}
    assert env["OIDC_JWKS_URL"] == jwks[runtime]
    assert "OIDC_CLIENT_SECRET" in env
    web = contract.service_environment(model(runtime), "shop-web", target, ENV)
    assert "OIDC_CLIENT_SECRET" not in web  # a public client has none
    assert web["OIDC_CLIENT_ID"] == "demo-shop-web"


@pytest.mark.parametrize("services, problem", [
    ({"api": {"port": 8000, "calls": ["x"]}}, "only a web app (`client: public`) calls"),
    ({"web": {"port": 3000, "client": "public", "calls": ["nope"]}}, "calls 'nope', which is not a service"),
    ({"aa": {"port": 3000, "client": "public"}, "bb": {"port": 3001, "client": "public", "calls": ["aa"]}},
     "calls 'aa', which is not a service (an API)"),
])
def test_what_a_web_app_may_call(services, problem):
    with pytest.raises(Invalid) as raised:
        Ecosystem.from_data({"name": "demo", "runtime": "local", "services": services})
    assert problem in raised.value.problem


def test_development_users_are_plain_names():
    with pytest.raises(Invalid):
        Ecosystem.from_data({"name": "demo", "runtime": "local", "core": {"signin": {"users": ["Not OK"]}}})


def test_a_service_a_web_app_calls_is_not_removed_under_it(tmp_path):
    from ecoctl.commands.init import init_ecosystem
    from tests.helpers import run_ecoctl

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  api:\n    port: 8100\n"
                    "  shop-web:\n    port: 3100\n    client: public\n    calls: [api]\n")
    result = run_ecoctl("remove-service", "api", cwd=root)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: web app(s) shop-web call api: remove api from their `calls` first"
    assert "  api:" in spec.read_text()


def test_init_declares_a_development_user_whose_password_only_an_explicit_command_prints(tmp_path):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.support.envfile import EnvFile
    from ecoctl.workspace import Workspace
    from tests.helpers import run_ecoctl

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    assert Workspace(root).ecosystem.core.signin.users == ["dev"]
    password = EnvFile(root / ".env").get("SIGNIN_DEV_PASSWORD")
    assert password and len(password) >= 32
    shown = run_ecoctl("secrets", "password", "dev", cwd=root)
    assert (shown.returncode, shown.stdout) == (0, password + "\n")
    masked = run_ecoctl("env", "portfolio", cwd=root)
    assert password not in masked.stdout + masked.stderr
    unknown = run_ecoctl("secrets", "password", "eve", cwd=root)
    assert unknown.returncode == 2 and "'eve' is not a development user (core.signin.users: dev)" in unknown.stderr
