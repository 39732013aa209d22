"""The cluster's own images, made here from the binaries devstack builds and imported into
containerd's `k8s.io` namespace (the one the kubelet's CRI uses): no registry is reachable, and
none is needed. An image is a one-layer archive in the layout `docker save` writes, which
`ctr images import` reads; its tag carries a digest of its contents, so a changed binary is a
new tag and an unchanged one is not imported again."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = "localhost/devstack"
NAMESPACE = "k8s.io"


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class BinaryImage:
    """One static binary at `/<name>`, run as `entrypoint`."""

    name: str
    binary: Path
    entrypoint: Sequence[str]
    ports: Sequence[str] = ()

    @property
    def tag(self) -> str:
        digest = hashlib.sha256(self.binary.read_bytes())
        digest.update(json.dumps(list(self.entrypoint)).encode())
        return digest.hexdigest()[:16]

    @property
    def reference(self) -> str:
        return f"{REPOSITORY}/{self.name}:{self.tag}"


def _layer(image: BinaryImage) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("tmp", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        info = tar.gettarinfo(str(image.binary), arcname=image.name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755
        with image.binary.open("rb") as binary:
            tar.addfile(info, binary)
    return buffer.getvalue()


def archive(image: BinaryImage) -> bytes:
    """The image as `docker save` would write it: manifest.json, the config, one layer."""
    layer = _layer(image)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": list(image.entrypoint),
                "Env": ["PATH=/"],
                "ExposedPorts": {port: {} for port in image.ports},
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "devstack.k8s.images"}],
        },
        sort_keys=True,
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [image.reference], "Layers": ["layer.tar"]}]
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (
            ("manifest.json", manifest),
            (config_name, config),
            ("layer.tar", layer),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Containerd:
    """`ctr` against the cluster's own containerd (not Docker's)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def _ctr(self, *args: str, data: bytes | None = None) -> str:
        done = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args],
            input=data,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise ImageError(f"ctr {' '.join(args)} failed: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def has(self, reference: str) -> bool:
        return reference in self._ctr("images", "list", "--quiet").split()

    def import_archive(self, data: bytes) -> None:
        # --no-unpack would leave the kubelet to unpack on first use; unpack now, once.
        self._ctr("images", "import", "--all-platforms", "-", data=data)

    def ensure(self, image: BinaryImage) -> str:
        """Import the image unless containerd has it; its reference."""
        if not self.has(image.reference):
            self.import_archive(archive(image))
        return image.reference

    def import_docker_image(self, reference: str, *more: str) -> None:
        """Copy images from the Docker engine into the cluster: one `docker save` archive (the
        layers they share are written once), imported in one go."""
        references = [reference, *more]
        saved = subprocess.run(["docker", "save", *references], capture_output=True, check=False)
        if saved.returncode != 0:
            raise ImageError(
                f"docker save {' '.join(references)} failed: {saved.stderr.decode().strip()}"
            )
        self.import_archive(saved.stdout)
