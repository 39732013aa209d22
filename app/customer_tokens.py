"""Customer identity from bearer JWTs (CUSTOMER_AUTH=jwt): who a token says the caller is, once
its signature, issuer, audience and expiry check out against the configured JWKS.

PyJWT does the verifying; this module decides what is accepted: asymmetric algorithms from the
settings only (never "none", never a shared secret), a key id the JWKS knows, `exp`, `iss`, `aud`
and `sub` present. A token is never logged, and neither is a verification's detail beyond its
kind: the reason a client is given (401) names what failed, not the token.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from app.config import Settings


class CustomerAuthConfigError(RuntimeError):
    """CUSTOMER_AUTH=jwt without what it needs: the service refuses to start."""


class InvalidCustomerToken(Exception):
    """The token is not one this service accepts; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """The JWKS URL did not answer: no verdict on the token either way."""


@dataclass(frozen=True)
class TokenIdentity:
    """What a verified token says: the subject, and whether it carries the manager role."""

    subject: str
    manager: bool


class SigningKeys(Protocol):
    async def key(self, kid: str) -> PyJWK: ...


class JwksFile:
    """A JWKS file, read once at start-up: a key rotation is a restart (or a URL instead)."""

    def __init__(self, path: Path) -> None:
        try:
            self._keys = PyJWKSet.from_json(path.read_text())
        except OSError as error:
            raise CustomerAuthConfigError(f"CUSTOMER_JWKS {path}: {error.strerror}") from None
        except (jwt.PyJWTError, json.JSONDecodeError) as error:
            raise CustomerAuthConfigError(f"CUSTOMER_JWKS {path}: not a JWKS ({error})") from None

    async def key(self, kid: str) -> PyJWK:
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidCustomerToken("unknown key id (kid)") from None


class JwksUrl:
    """A JWKS served over HTTP(S), as identity providers publish theirs: PyJWKClient caches the
    set and fetches it again for a key id it does not know (a rotation), at most every 30 s."""

    def __init__(self, url: str, cache_seconds: float) -> None:
        self._client = PyJWKClient(url, cache_jwk_set=True, lifespan=cache_seconds, timeout=5)

    async def key(self, kid: str) -> PyJWK:
        try:
            # urllib underneath: off the event loop.
            return await asyncio.to_thread(self._client.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as error:
            raise KeysUnavailable(f"CUSTOMER_JWKS did not answer: {error}") from None
        except jwt.PyJWKClientError:
            raise InvalidCustomerToken("unknown key id (kid)") from None


class CustomerTokens:
    """Verifies customer JWTs under the settings' CUSTOMER_* rules."""

    def __init__(self, settings: Settings, keys: SigningKeys | None = None) -> None:
        if not settings.customer_jwt_issuer:
            raise CustomerAuthConfigError(
                "CUSTOMER_AUTH=jwt needs CUSTOMER_JWT_ISSUER (the `iss` every token must carry)"
            )
        self._issuer = settings.customer_jwt_issuer
        self._audience = settings.customer_jwt_audience
        self._algorithms = list(settings.customer_jwt_algorithms)
        self._leeway = settings.customer_jwt_leeway_seconds
        self._manager_role = settings.customer_manager_role
        self._keys = keys or signing_keys(settings)

    async def verify(self, token: str) -> TokenIdentity:
        """The identity in `token`; InvalidCustomerToken when any check fails."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidCustomerToken("not a JWT") from None
        if header.get("alg") not in self._algorithms:
            raise InvalidCustomerToken(f"algorithm not accepted (accepted: {self._algorithms})")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidCustomerToken("no key id (kid) in the token's header")
        key = await self._keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidCustomerToken("token expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidCustomerToken("wrong audience (aud)") from None
        except jwt.InvalidIssuerError:
            raise InvalidCustomerToken("wrong issuer (iss)") from None
        except jwt.InvalidSignatureError:
            raise InvalidCustomerToken("signature does not verify") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidCustomerToken(f"claim {error.claim!r} missing") from None
        except jwt.PyJWTError as error:
            # Names PyJWT's check (its message never holds the token).
            raise InvalidCustomerToken(f"token rejected: {error}") from None
        return TokenIdentity(
            subject=_subject(claims), manager=claims.get("role") == self._manager_role
        )


def _subject(claims: dict[str, Any]) -> str:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise InvalidCustomerToken("claim 'sub' is not a name")
    return subject


def signing_keys(settings: Settings) -> SigningKeys:
    source = settings.customer_jwks
    if not source:
        raise CustomerAuthConfigError(
            "CUSTOMER_AUTH=jwt needs CUSTOMER_JWKS: the path or http(s) URL of the JWKS whose "
            "keys sign customer tokens"
        )
    if source.startswith(("http://", "https://")):
        return JwksUrl(source, settings.customer_jwks_cache_seconds)
    return JwksFile(Path(source))


def customer_tokens(settings: Settings) -> CustomerTokens | None:
    """The verifier CUSTOMER_AUTH asks for (None: off)."""
    return CustomerTokens(settings) if settings.customer_auth == "jwt" else None
