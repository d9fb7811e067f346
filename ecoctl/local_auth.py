"""The local runtime's stand-in for Authentik: a signing key and its JWKS, in `.ecoctl/keys/`.

Services in the local runtime validate tokens against `.ecoctl/keys/jwks.json` exactly as they
validate Authentik's JWKS elsewhere (RS256, `iss`, `aud`, `exp`); `ecoctl token`
(commands/tokens.py) mints them with the contract's issuer and audience.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from ecoctl.support.atomic import write_atomic


def keys_dir(workspace) -> Path:
    return workspace.state_dir / "keys"


def private_key_path(workspace) -> Path:
    return keys_dir(workspace) / "signing-key.pem"


def jwks_path(workspace) -> Path:
    return keys_dir(workspace) / "jwks.json"


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
