"""Local stand-ins for the images docker-compose.yml names, for machines without a registry.

- `daprd`, `placement`, `scheduler`: the statically linked binaries devstack builds from Dapr's
  Go module, in an image laid out like the official one (binary in `/`, user 65532, a writable
  `/tmp` and `/var/lock`), made with `docker import` from a tar written here.
- For Kubernetes (`make dapr-images`), the same recipe for all six: the control plane that Dapr's
  Helm chart runs (operator, sentry, injector, placement, scheduler) and daprd, the sidecar its
  injector adds. The chart composes `<registry>/<name>:<tag>`, which deploy/k8s/dapr-values.yaml
  points at these (`localhost/order-processor/sentry:1.18.2`); `save_images` writes them to one
  archive for a container runtime other than this Docker engine (`ctr images import`).
- `jaeger` (the trace backend of docker-compose.observability.yml): the static binary devstack
  builds from Jaeger's Go module, laid out like the official image (entrypoint
  `/cmd/jaeger/jaeger-linux`, user 10001), made the same way.
- Redis, nginx (the replicas' proxy), Prometheus (docker-compose.observability.yml) and the
  Python base: Debian's packages (`debootstrap --variant=minbase`), imported.
  Debian's Python is made to behave like the official image for the Dockerfile's steps: `pip`
  installs system-wide, and it trusts the CA bundle the host's pip uses, so PyPI is reachable
  from the build on networks that re-sign TLS. That bundle lives only in this local image; the
  official `python` image needs nothing of the kind.

Each image carries a label with a digest of everything it is made from; an image whose label
matches is reused, so a warm run builds nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devstack.build.dapr import KUBERNETES, STANDALONE
from devstack.build.jaeger import release_version
from devstack.settings import pinned_dapr_version

REPOSITORY = "localhost/order-processor"
DIGEST_LABEL = "org.order-processor.inputs"
# Bump when the recipe below changes in a way the digested inputs do not show.
RECIPE = "3"
# Debian's release whose python3 is 3.11, the version the Dockerfile's default image has.
DEBIAN_SUITE = "bookworm"
DAPR_USER = 65532  # the official images' non-root user
JAEGER_USER = 10001  # the official Jaeger image's
JAEGER_ENTRYPOINT = "cmd/jaeger/jaeger-linux"  # where the official Jaeger image has it
NOBODY = 65534  # the official Prometheus image runs as nobody
HOST_CA_CANDIDATES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalImages:
    """Environment for docker-compose.yml that selects the local images."""

    dapr_repository: str
    redis: str
    python: str
    nginx: str
    # docker-compose.observability.yml's two: built only when asked for (None: not built).
    prometheus: str | None = None
    jaeger: str | None = None

    def compose_env(self) -> dict[str, str]:
        env = {
            "DAPR_IMAGE_REPO": self.dapr_repository,
            "REDIS_IMAGE": self.redis,
            "PYTHON_IMAGE": self.python,
            "NGINX_IMAGE": self.nginx,
            "PROMETHEUS_IMAGE": self.prometheus,
            "JAEGER_IMAGE": self.jaeger,
        }
        return {name: value for name, value in env.items() if value is not None}


def _docker(*args: str, stdin: bytes | None = None, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, check=False, timeout=900
    )
    if check and result.returncode != 0:
        raise ImageBuildError(f"docker {' '.join(args[:2])} failed: {result.stderr.decode()}")
    return result.stdout.decode().strip()


def image_digest_label(tag: str) -> str | None:
    result = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{DIGEST_LABEL}"}}}}',
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _import(tag: str, tar_stream: bytes | Path, digest: str, changes: list[str]) -> None:
    args = ["import"]
    for change in [*changes, f"LABEL {DIGEST_LABEL}={digest}"]:
        args += ["--change", change]
    if isinstance(tar_stream, Path):
        _docker(*args, str(tar_stream), tag)
    else:
        _docker(*args, "-", tag, stdin=tar_stream)


# -- Dapr and Jaeger: one static binary each -------------------------------------------------


def _dapr_rootfs(binary: Path) -> bytes:
    """The official layout: the binary in `/`, user 65532, world-writable /tmp and /var/lock."""
    return _static_rootfs(binary, binary.name, ("nonroot", DAPR_USER))


def _static_rootfs(binary: Path, target: str, user: tuple[str, int]) -> bytes:
    """A root filesystem for one static binary at `target`, run as `user` (name, uid), with
    world-writable /tmp and /var/lock."""
    name, uid = user
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add_dir(path: str, mode: int, owner: int = 0) -> None:
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, owner, owner
            tar.addfile(info)

        def add_file(path: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for path in ("etc", "home", "var"):
            add_dir(path, 0o755)
        add_dir("tmp", 0o1777)
        add_dir("var/lock", 0o1777)
        add_dir(f"home/{name}", 0o700, uid)
        add_file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/sbin/nologin\n"
            + f"{name}:x:{uid}:{uid}:{name}:/home/{name}:/sbin/nologin\n".encode(),
        )
        add_file("etc/group", f"root:x:0:\n{name}:x:{uid}:\n".encode())
        add_file("etc/nsswitch.conf", b"hosts: files dns\n")
        parents = Path(target).parent.parts
        for depth in range(1, len(parents) + 1):
            add_dir("/".join(parents[:depth]), 0o755)
        add_file(target, binary.read_bytes(), 0o755)
    return buffer.getvalue()


def dapr_image(name: str, version: str) -> str:
    """The local image of one Dapr program: what compose and Dapr's Helm chart both name."""
    return f"{REPOSITORY}/{name}:{version}"


def build_dapr_images(
    bin_dir: Path,
    version: str,
    report: Callable[[str], None],
    names: Iterable[str] = STANDALONE,
) -> str:
    """One image per Dapr program in `names` (compose's three unless told), built only where
    its label's digest differs; returns the repository they share."""
    for name in names:
        binary = bin_dir / name
        if not binary.is_file():
            raise ImageBuildError(f"{binary} is missing; run `make dapr`")
        tag = dapr_image(name, version)
        rootfs = _dapr_rootfs(binary)
        digest = _digest([RECIPE.encode(), rootfs])
        if image_digest_label(tag) == digest:
            continue
        started = time.monotonic()
        _import(tag, rootfs, digest, [f"USER {DAPR_USER}:{DAPR_USER}", "WORKDIR /"])
        report(f"built {tag} in {time.monotonic() - started:.1f}s")
    return REPOSITORY


def build_dapr_kubernetes_images(
    bin_dir: Path, version: str, report: Callable[[str], None]
) -> list[str]:
    """The images Dapr's Helm chart runs (control plane and sidecar), current; their names."""
    build_dapr_images(bin_dir, version, report, KUBERNETES)
    return [dapr_image(name, version) for name in KUBERNETES]


def save_images(references: Iterable[str], archive: Path) -> Path:
    """`docker save` the images into one archive, for a container runtime that is not this
    Docker engine (a kubelet's containerd loads it with `ctr -n k8s.io images import`)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    _docker("save", "--output", str(archive), *references)
    return archive


def build_jaeger_image(binary: Path, report: Callable[[str], None]) -> str:
    """The official Jaeger image's layout around the binary devstack built (`make jaeger`)."""
    if not binary.is_file():
        raise ImageBuildError(f"{binary} is missing; run `make jaeger`")
    tag = f"{REPOSITORY}/jaeger:{release_version()}"
    rootfs = _static_rootfs(binary, JAEGER_ENTRYPOINT, ("jaeger", JAEGER_USER))
    changes = [
        f"USER {JAEGER_USER}:{JAEGER_USER}",
        "WORKDIR /",
        f'ENTRYPOINT ["/{JAEGER_ENTRYPOINT}"]',
    ]
    digest = _digest([RECIPE.encode(), *(change.encode() for change in changes), rootfs])
    if image_digest_label(tag) != digest:
        started = time.monotonic()
        _import(tag, rootfs, digest, changes)
        report(f"built {tag} in {time.monotonic() - started:.1f}s")
    return tag


# -- Debian ----------------------------------------------------------------------------------


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 .sources or one-line .list files)."""
    files = sorted((apt_dir / "sources.list.d").glob("*.sources"))
    for path in files:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                (key.strip(), value.strip())
                for key, _, value in (
                    line.partition(":")
                    for line in stanza.splitlines()
                    if line and not line.startswith("#")
                )
            )
            suites = fields.get("Suites", "").split()
            if fields.get("Types", "").split()[:1] == ["deb"] and DEBIAN_SUITE in suites:
                return fields["URIs"].split()[0]
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + DEBIAN_SUITE + r"\s", line)
            if match:
                return match.group(1)
    raise ImageBuildError(f"no `deb ... {DEBIAN_SUITE}` source in {apt_dir}; cannot debootstrap")


def host_ca_bundle() -> Path:
    """The CA bundle the host's pip trusts (PIP_CERT and friends, then the system bundle)."""
    for variable in HOST_CA_CANDIDATES:
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    pip_conf = subprocess.run(
        ["python3", "-m", "pip", "config", "get", "global.cert"],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip_conf.returncode == 0 and Path(pip_conf.stdout.strip()).is_file():
        return Path(pip_conf.stdout.strip())
    return DEFAULT_CA_BUNDLE


@dataclass(frozen=True)
class DebianImage:
    name: str
    tag: str
    packages: tuple[str, ...]
    changes: tuple[str, ...]
    prepare: Callable[[Path], None]
    extra_inputs: tuple[bytes, ...] = ()

    @property
    def reference(self) -> str:
        return f"{REPOSITORY}/{self.name}:{self.tag}"

    def digest(self) -> str:
        recipe = [RECIPE, DEBIAN_SUITE, *self.packages, *self.changes]
        return _digest([part.encode() for part in recipe] + list(self.extra_inputs))


def _prepare_redis(rootfs: Path) -> None:
    data = rootfs / "data"
    data.mkdir(exist_ok=True)
    # The named volume mounted here takes over this directory's owner: the redis user.
    passwd = (rootfs / "etc/passwd").read_text()
    match = re.search(r"^redis:x:(\d+):(\d+):", passwd, re.MULTILINE)
    if match is None:
        raise ImageBuildError("redis-server did not create its user")
    os.chown(data, int(match.group(1)), int(match.group(2)))


def _prepare_prometheus(rootfs: Path) -> None:
    # The official image's data directory, writable by the user it runs as.
    data = rootfs / "prometheus"
    data.mkdir(exist_ok=True)
    os.chown(data, NOBODY, NOBODY)


def _prepare_python(ca_bundle: bytes) -> Callable[[Path], None]:
    def prepare(rootfs: Path) -> None:
        # Debian marks its Python externally managed (PEP 668); the official image does not,
        # and the Dockerfile installs into the system interpreter as it does there.
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        (rootfs / "etc/ssl/certs/host-ca-bundle.crt").write_bytes(ca_bundle)

    return prepare


def debian_images(observability: bool = True) -> list[DebianImage]:
    """The Debian-based images; Prometheus's only with `observability`."""
    ca_bundle = host_ca_bundle().read_bytes()
    images = [
        DebianImage(
            "redis",
            f"7-{DEBIAN_SUITE}",
            ("redis-server",),
            (f"ENV PATH={SEARCH_PATH}", "WORKDIR /data", "USER redis", 'CMD ["redis-server"]'),
            _prepare_redis,
        ),
        DebianImage(
            "nginx",
            f"1.22-{DEBIAN_SUITE}",
            ("nginx",),
            (f"ENV PATH={SEARCH_PATH}", 'CMD ["nginx", "-g", "daemon off;"]'),
            lambda rootfs: None,
        ),
        DebianImage(
            "prometheus",
            f"2.42-{DEBIAN_SUITE}",
            ("prometheus",),
            # As the official image: the binary as entrypoint, run as nobody in /prometheus.
            (
                f"ENV PATH={SEARCH_PATH}",
                f"USER {NOBODY}:{NOBODY}",
                "WORKDIR /prometheus",
                'ENTRYPOINT ["/usr/bin/prometheus"]',
                'CMD ["--config.file=/etc/prometheus/prometheus.yml",'
                ' "--storage.tsdb.path=/prometheus"]',
            ),
            _prepare_prometheus,
        ),
        DebianImage(
            "python",
            f"3.11-{DEBIAN_SUITE}",
            ("python3", "python3-pip", "python-is-python3", "ca-certificates"),
            (
                f"ENV PATH={SEARCH_PATH}",
                "ENV LANG=C.UTF-8",
                "ENV PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt",
                'CMD ["python3"]',
            ),
            _prepare_python(ca_bundle),
            (ca_bundle,),
        ),
    ]
    return [image for image in images if observability or image.name != "prometheus"]


def _debootstrap(image: DebianImage, work: Path, mirror: str) -> Path:
    rootfs = work / "rootfs"
    command = [
        "debootstrap", "--variant=minbase", f"--include={','.join(image.packages)}",
        DEBIAN_SUITE, str(rootfs), mirror,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log = rootfs / "debootstrap" / "debootstrap.log"
        detail = log.read_text(errors="replace")[-3000:] if log.exists() else result.stderr[-3000:]
        raise ImageBuildError(f"debootstrap for {image.name} failed:\n{detail}")
    # What a container never needs: downloaded packages and package lists.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    image.prepare(rootfs)
    tarball = work / "rootfs.tar"
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], check=True
    )
    return tarball


def build_debian_images(
    report: Callable[[str], None], observability: bool = True
) -> dict[str, str]:
    references: dict[str, str] = {}
    for image in debian_images(observability):
        references[image.name] = image.reference
        digest = image.digest()
        if image_digest_label(image.reference) == digest:
            continue
        if shutil.which("debootstrap") is None:
            raise ImageBuildError("debootstrap is not installed; run `make tools`")
        mirror = debian_mirror()
        started = time.monotonic()
        report(f"building {image.reference} from Debian packages ({', '.join(image.packages)})")
        with tempfile.TemporaryDirectory(prefix=f"image-{image.name}-") as work:
            tarball = _debootstrap(image, Path(work), mirror)
            _import(image.reference, tarball, digest, list(image.changes))
        report(f"built {image.reference} in {time.monotonic() - started:.0f}s")
    return references


def build_local_images(
    bin_dir: Path, report: Callable[[str], None], jaeger_binary: Path | None = None
) -> LocalImages:
    """Make sure every local image is current (building only what changed) and say which.

    The observability images (Prometheus, and Jaeger from `jaeger_binary`) only when a Jaeger
    binary is given: the plain compose file needs neither, and Jaeger's cold build is long."""
    observability = jaeger_binary is not None
    dapr_repository = build_dapr_images(bin_dir, pinned_dapr_version(), report)
    jaeger = build_jaeger_image(jaeger_binary, report) if jaeger_binary is not None else None
    debian = build_debian_images(report, observability)
    return LocalImages(
        dapr_repository,
        debian["redis"],
        debian["python"],
        debian["nginx"],
        debian.get("prometheus"),
        jaeger,
    )
