"""contract.OWNED_VARIABLES names every variable the contract gives, in every target and setting
(compose removes from a service's entry only the variables it names), and stale_variables picks
exactly those of them a service no longer gets."""

from __future__ import annotations

import pytest

from ecoctl import contract
from ecoctl.model import Ecosystem

SETTINGS = {
    "plain": {},
    "scaled": {"postgres": {"pooler": "pgbouncer", "replicas": 1}},
    "external postgres": {"postgres": {"external": {"host": "db.example.com", "sslmode": "verify-full"}}},
    "external authentik": {"authentik": {"url": "https://auth.example.com"}},
}


def ecosystem(runtime: str, core: dict) -> Ecosystem:
    return Ecosystem.from_data({
        "name": "demo", "runtime": runtime, "core": {"address": "10.0.1.50", **core},
        "services": {"portfolio": {"port": 8000, "template": "portfolio"},
                     "loyalty": {"port": 8100, "reads": ["portfolio"]},
                     "audit": {"port": 8200, "pattern": "external", "host": "10.0.2.5"},
                     "web": {"port": 3000, "client": "public", "calls": ["portfolio", "loyalty"]}}})


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("runtime,targets", [("local", ["local", "host", "external"]),
                                             ("docker", ["compose", "host", "external"]),
                                             ("swarm", ["swarm"])])
def test_every_variable_given_is_owned(setting, runtime, targets):
    model = ecosystem(runtime, SETTINGS[setting])
    secrets = {key: "s3cret" for key in contract.secret_keys(model)}
    seen = set()
    for target in targets:
        for service in model.services:
            for name in contract.service_environment(model, service, target, secrets):
                seen.add(name)
                assert (name.removesuffix("_FILE") if target == "swarm" else name) in contract.OWNED_VARIABLES, \
                    (setting, runtime, target, service, name)
    assert {"HOST", "PORT", "OIDC_ISSUER", "API_URLS"} <= seen


def test_the_settings_above_give_every_owned_variable():
    """The table above reaches each owned name at least once (a name nothing gives is not owned)."""
    seen = set()
    for runtime, targets in (("local", ["local", "external"]), ("docker", ["compose"]), ("swarm", ["swarm"])):
        for core in SETTINGS.values():
            model = ecosystem(runtime, core)
            secrets = {key: "s3cret" for key in contract.secret_keys(model)}
            for target in targets:
                for service in model.services:
                    seen |= {name.removesuffix("_FILE") for name in
                             contract.service_environment(model, service, target, secrets)}
    assert seen == contract.OWNED_VARIABLES


@pytest.mark.parametrize("environment,desired,stale", [
    ({"OIDC_ACCEPTED_CLIENTS": "[]", "PORT": "1"}, {"PORT": "1"}, ["OIDC_ACCEPTED_CLIENTS"]),
    ({"TEAM_FLAG": "on", "PORT": "1"}, {"PORT": "1"}, []),                      # the team's own
    ({"REDIS_PASSWORD_FILE": "/run/secrets/x"}, {}, ["REDIS_PASSWORD_FILE"]),    # a secret's file form
    ({"TEAM_FILE": "/x", "DATABASE_URL": "u"}, {"DATABASE_URL": "v"}, []),       # given, even if it differs
])
def test_stale_variables(environment, desired, stale):
    assert contract.stale_variables(environment, desired) == stale
