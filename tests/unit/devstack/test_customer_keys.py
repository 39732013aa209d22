"""devstack's local signing key for CUSTOMER_AUTH=jwt: private to its owner, public in the JWKS,
and its tokens accepted by the app's verifier."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from app.config import Settings
from app.customer_tokens import CustomerAuthConfigError, CustomerTokens
from devstack.customer_keys import CustomerKeys


def test_the_private_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    keys = CustomerKeys(tmp_path / "customer-auth")
    keys.ensure()
    assert stat.S_IMODE(keys.private_key_file.stat().st_mode) == 0o600


def test_the_jwks_holds_the_public_key_only(tmp_path: Path) -> None:
    keys = CustomerKeys(tmp_path / "customer-auth")
    keys.ensure()
    (jwk,) = json.loads(keys.jwks_file.read_text())["keys"]
    assert "d" not in jwk  # EC private scalar
    assert jwk["kid"]
    assert jwk["alg"] == "ES256"


def test_a_second_ensure_keeps_the_key(tmp_path: Path) -> None:
    keys = CustomerKeys(tmp_path / "customer-auth")
    keys.ensure()
    first = keys.private_key_file.read_bytes()
    keys.ensure()
    assert keys.private_key_file.read_bytes() == first


async def test_the_apps_verifier_accepts_its_tokens(tmp_path: Path) -> None:
    keys = CustomerKeys(tmp_path / "customer-auth")
    token = keys.token("alice", manager=True)
    env = {name.lower(): value for name, value in keys.app_env().items()}
    settings = Settings.model_validate({"manager_token": "t", **env})

    identity = await CustomerTokens(settings).verify(token)

    assert (identity.subject, identity.manager) == ("alice", True)


@pytest.mark.parametrize("missing", ["customer_jwks", "customer_jwt_issuer"])
def test_jwt_without_its_keys_or_issuer_refuses_to_start(missing: str) -> None:
    settings = {"customer_auth": "jwt", "customer_jwks": "/x.json", "customer_jwt_issuer": "i"}
    del settings[missing]
    with pytest.raises(CustomerAuthConfigError, match=missing.upper()):
        CustomerTokens(Settings.model_validate({"manager_token": "t", **settings}))
