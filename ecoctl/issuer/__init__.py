"""The local runtime's development sign-in: a real OpenID Connect issuer on 127.0.0.1, built on
Authlib and Flask, standing in for Authentik where the stack runs no Authentik.

It speaks Authentik's URL shape, so the service contract is the same in every runtime:
`/application/o/<client_id>/` is each application's issuer (with `.well-known/openid-configuration`,
`jwks/` and `end-session/` below it), `/application/o/authorize/`, `/token/` and `/userinfo/` are
shared. It is a program of its own (run under supervisord as the runtime's unprivileged user, from
a readable copy of this package and its dependencies): it imports nothing else of ecoctl, and reads
one JSON config (0600) that ecoctl renders (`ecoctl.signin`): its clients, its development users'
password hashes and its signing key. Codes, sessions and refresh tokens live in memory.

Modules: `store` (the config as Authlib models, in-memory grants), `oauth` (the Authlib server:
grants, PKCE, JWT access tokens, end-session), `server` (the Flask app and its routes), `page`
(the sign-in page), `__main__` (`python -m ecoctl.issuer CONFIG`).
"""
