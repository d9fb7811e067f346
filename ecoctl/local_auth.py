"""The local runtime's signing key and its JWKS, in `.ecoctl/keys/` (root's, 0700/0600).

The development sign-in (`ecoctl.issuer`, configured by `ecoctl.signin`) signs with this key and
publishes its public half at each application's JWKS URL, where services fetch it exactly as they
fetch Authentik's; `sign` is for tests that need a token with claims of their own.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from ecoctl.support.atomic import write_atomic


def keys_dir(workspace) -> Path:
    return workspace.state_dir / "keys"


def signing_key_file(state_dir: Path) -> Path:
    """The private key in an ecosystem's state folder (`.ecoctl/`)."""
    return Path(state_dir) / "keys" / "signing-key.pem"


def jwks_file(state_dir: Path) -> Path:
    return Path(state_dir) / "keys" / "jwks.json"


def private_key_path(workspace) -> Path:
    return signing_key_file(workspace.state_dir)


def jwks_path(workspace) -> Path:
    return jwks_file(workspace.state_dir)


def ensure_signing_key(workspace) -> bool:
    """Create the RSA signing key and its JWKS once; returns True when it created them."""
    if private_key_path(workspace).exists() and jwks_path(workspace).exists():
        return False
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"})
    keys_dir(workspace).mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(private_key_path(workspace), pem, mode=0o600)
    write_atomic(jwks_path(workspace), json.dumps({"keys": [jwk]}, indent=2) + "\n", mode=0o644)
    return True


def sign(workspace, claims: dict) -> str:
    """CLAIMS as a JWT signed with the local key (RS256, its `kid` in the header)."""
    import jwt

    pem = private_key_path(workspace).read_bytes()
    kid = json.loads(jwks_path(workspace).read_text())["keys"][0]["kid"]
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})
