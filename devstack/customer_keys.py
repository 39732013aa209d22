"""A local signing key for customer tokens, so that CUSTOMER_AUTH=jwt can be tried without an
identity provider: `python -m devstack token --sub alice [--manager]` prints a token, and
`CUSTOMER_AUTH=jwt make run` points the app at the matching public JWKS.

The private key lives under the stack's data directory (`.data/customer-auth/`, mode 0600, never
in the repository); the JWKS beside it holds the public key only. Tokens are ES256 with the
issuer and audience below, which `make run` hands the app.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER: Final = "devstack-local"
AUDIENCE: Final = "order-processor"
MANAGER_ROLE: Final = "manager"
ALGORITHM: Final = "ES256"


@dataclass(frozen=True)
class CustomerKeys:
    """The signing key and the JWKS that publishes its public half, under `directory`."""

    directory: Path

    @property
    def private_key_file(self) -> Path:
        return self.directory / "signing-key.pem"

    @property
    def jwks_file(self) -> Path:
        return self.directory / "jwks.json"

    def ensure(self) -> None:
        """Create the key pair unless it exists (several callers at once: one key wins), and
        write the JWKS from it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.private_key_file.exists():
            _write_private(self.private_key_file, ec.generate_private_key(ec.SECP256R1()))
        jwks = {"keys": [self.public_jwk()]}
        temporary = self.jwks_file.with_name(f".{self.jwks_file.name}.{os.getpid()}")
        temporary.write_text(json.dumps(jwks, indent=2) + "\n")
        temporary.replace(self.jwks_file)

    def _private(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.private_key_file.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def public_jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self._private().public_key()))
        # The key id is the key's own digest: a new key pair gets a new id, and a token signed
        # by an old one is refused as an unknown key, not as a bad signature.
        digest = hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()
        return {**public, "kid": digest[:16], "alg": ALGORITHM, "use": "sig"}

    def token(
        self,
        subject: str,
        manager: bool = False,
        ttl_seconds: int = 3600,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        now: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A token for `subject` signed with the local key (the manager role when asked)."""
        self.ensure()
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "iat": issued,
            "exp": issued + ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        if manager:
            claims["role"] = MANAGER_ROLE
        claims.update(extra or {})
        return jwt.encode(
            claims, self._private(), algorithm=ALGORITHM, headers={"kid": self.public_jwk()["kid"]}
        )

    def app_env(self) -> dict[str, str]:
        """What the app needs to accept these tokens."""
        return {
            "CUSTOMER_AUTH": "jwt",
            "CUSTOMER_JWKS": str(self.jwks_file),
            "CUSTOMER_JWT_ISSUER": ISSUER,
            "CUSTOMER_JWT_AUDIENCE": AUDIENCE,
            "CUSTOMER_MANAGER_ROLE": MANAGER_ROLE,
        }


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """The key, readable by its owner only from the first byte on; linked into place so that a
    racing caller's key never replaces one already in use."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()
