"""The dev cluster's certificates, from a local CA made on the first start (with `openssl`, which
every Debian has: no Python dependency for it). Reused while the state folder lives, so the
kubeconfig written for the user and the service-account tokens stay valid across restarts;
delete the folder (`python -m devstack.k8s purge`) for a new CA."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
LEAF_DAYS = 365


class PkiError(RuntimeError):
    pass


@dataclass(frozen=True)
class Leaf:
    """One certificate: `name` is its files' stem; `cn` and `org` are what RBAC sees (user and
    group); `sans` makes it a server certificate for those names and addresses."""

    name: str
    cn: str
    org: str = ""
    sans: tuple[str, ...] = ()


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _subject(cn: str, org: str) -> str:
    return (f"/O={org}" if org else "") + f"/CN={cn}"


def _extensions(leaf: Leaf) -> str:
    lines = ["[v3]", "basicConstraints = critical, CA:FALSE"]
    if leaf.sans:
        sans = ", ".join(
            f"IP:{san}" if san.replace(".", "").isdigit() else f"DNS:{san}" for san in leaf.sans
        )
        lines += [
            "keyUsage = critical, digitalSignature, keyEncipherment",
            "extendedKeyUsage = serverAuth, clientAuth",
            f"subjectAltName = {sans}",
        ]
    else:
        lines += [
            "keyUsage = critical, digitalSignature, keyEncipherment",
            "extendedKeyUsage = clientAuth",
        ]
    return "\n".join(lines) + "\n"


class Pki:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.cert("ca")

    @property
    def service_account_key(self) -> Path:
        return self.key("service-account")

    @property
    def service_account_public(self) -> Path:
        return self.directory / "service-account.pub"

    def ensure(self, leaves: list[Leaf]) -> None:
        """Make the CA, the service-account key pair and every leaf that is not there yet."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        if not self.ca.exists():
            _openssl(
                "req", "-x509", "-new", "-nodes", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:P-256", "-sha256", "-days", str(CA_DAYS),
                "-subj", "/CN=devstack-kubernetes-ca", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", str(self.key("ca")), "-out", str(self.ca),
            )  # fmt: skip
        if not self.service_account_public.exists():
            _openssl(
                "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", str(self.service_account_key),
            )  # fmt: skip
            _openssl(
                "pkey", "-in", str(self.service_account_key), "-pubout",
                "-out", str(self.service_account_public),
            )  # fmt: skip
        for leaf in leaves:
            if not self.cert(leaf.name).exists():
                self._issue(leaf)

    def _issue(self, leaf: Leaf) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            request = Path(scratch) / "request.csr"
            extensions = Path(scratch) / "extensions.cnf"
            extensions.write_text(_extensions(leaf))
            _openssl(
                "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-subj", _subject(leaf.cn, leaf.org),
                "-keyout", str(self.key(leaf.name)), "-out", str(request),
            )  # fmt: skip
            _openssl(
                "x509", "-req", "-in", str(request), "-sha256", "-days", str(LEAF_DAYS),
                "-CA", str(self.ca), "-CAkey", str(self.key("ca")), "-CAcreateserial",
                "-extfile", str(extensions), "-extensions", "v3",
                "-out", str(self.cert(leaf.name)),
            )  # fmt: skip
