"""`python -m devstack run|build|images|dapr-images|ensure-tools`: behind `make run`, `dapr`,
`images`, `dapr-images`, `tools`."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from devstack.build.dapr import DaprBuildError, build
from devstack.build.jaeger import JaegerBuildError
from devstack.build.jaeger import build as build_jaeger
from devstack.customer_keys import CustomerKeys
from devstack.images.docker_engine import DockerEngine, DockerEngineError
from devstack.images.local import (
    ImageBuildError,
    build_dapr_kubernetes_images,
    build_local_images,
    save_images,
)
from devstack.settings import StackSettings, pinned_dapr_version
from devstack.stack import Stack, StackError
from devstack.stack.observability import supervisor_metrics

# Command on PATH -> the Debian package that provides it. docker.io brings dockerd with
# containerd and runc; debootstrap builds the local Redis and Python images; chromium is the
# browser the browser tests drive (Playwright cannot download its own here); nginx is the
# reverse proxy in front of the replicas (REPLICAS > 1); prometheus scrapes the stack when
# observability is on.
DEBIAN_PACKAGES = {
    "redis-server": "redis-server",
    "docker-compose": "docker-compose",
    "dockerd": "docker.io",
    "debootstrap": "debootstrap",
    "chromium": "chromium",
    "nginx": "nginx",
    # The metrics server of the observability stack (OBSERVABILITY=true make run).
    "prometheus": "prometheus",
    # The Kubernetes dev cluster (`make k8s`): containerd and runc come with docker.io; the CNI
    # plugins (bridge, host-local, loopback, portmap) are not commands on PATH, so the key is
    # the plugin's path; kube-proxy clears conntrack entries and port-forward may use socat.
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "conntrack": "conntrack",
    "socat": "socat",
    "iptables": "iptables",
}


def ensure_tools(commands: list[str]) -> None:
    """Install the Debian packages behind any missing command (as root), or say how to."""
    unknown = sorted(set(commands) - set(DEBIAN_PACKAGES))
    if unknown:
        raise StackError(f"unknown tools {unknown}; known: {sorted(DEBIAN_PACKAGES)}")
    missing = [DEBIAN_PACKAGES[command] for command in commands if shutil.which(command) is None]
    if missing:
        install_debian_packages(missing)


def install_debian_packages(packages: list[str], simulate: bool = False) -> None:
    """`apt-get update` and `apt-get install` (as root), every line they print on standard
    error: `eval "$(make -s images)"` reads standard output as shell code, and apt writes its
    progress there. `simulate`: apt only says what it would do (the tests' way to run apt)."""
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if os.geteuid() != 0:
        raise StackError(
            f"missing: {', '.join(packages)}. Install with:\n"
            f"  sudo apt-get update && sudo {' '.join(install)}"
        )
    print(
        f"[devstack] installing {', '.join(packages)} (Debian packages)",
        file=sys.stderr,
        flush=True,
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=sys.stderr)
    subprocess.run(
        [*install, *(["--simulate"] if simulate else [])], check=True, env=env, stdout=sys.stderr
    )


def run(settings: StackSettings) -> int:
    stop_requested = threading.Event()
    up = False
    served = None

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()
        if not up:  # still starting: abandon the start-up, which stops what already runs
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack = Stack(
        settings,
        report=lambda line: print(f"[devstack] {line}", file=sys.stderr, flush=True),
        supervise=True,
        app_env=customer_auth_env(settings),
    )
    try:
        try:
            stack.start()
        except KeyboardInterrupt:
            return 130
        up = True
        replicas = (
            f"  Replicas: {len(stack.replicas)} behind nginx (apps on "
            f"{', '.join(str(r.app_port) for r in stack.replicas)}; "
            f"{settings.log_dir}/proxy-access.log shows which served each request)\n"
            if stack.proxied
            else ""
        )
        # The supervisor's counters for Prometheus's `devstack` job (None: observability off).
        served = supervisor_metrics(stack)
        print(
            f"\nOrder service is up (Dapr {stack.version}).\n"
            f"  API:      {stack.app_url}\n"
            f"  Docs:     {stack.app_url}/docs\n"
            f"  Console:  {stack.app_url}/console ({manager_token_hint(stack)})\n"
            f"  Customers: {customer_auth_hint(stack)}\n"
            f"{replicas}"
            f"  Sidecar:  {stack.dapr_http_url}/v1.0/healthz\n"
            f"  Logs:     {settings.log_dir}/{{{','.join(stack.service_order)}}}.log\n"
            f"  Restarts: {settings.log_dir}/devstack.log (a component that exits or hangs is"
            " restarted)\n"
            f"{observability_addresses(stack)}"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        # The supervisor restarts what exits or hangs; this loop only waits for Ctrl-C/SIGTERM
        # or for the supervisor to give up on a component that keeps failing.
        while not stop_requested.wait(1.0):
            if failure := stack.supervision_failure:
                print(f"error: {failure}", file=sys.stderr)
                if stack.supervisor is not None and stack.supervisor.gave_up_on is not None:
                    print(stack.log_tail(stack.supervisor.gave_up_on), file=sys.stderr)
                return 1
        return 0
    finally:
        print("[devstack] stopping ...", file=sys.stderr, flush=True)
        stack.stop()
        if served is not None:
            served[0].shutdown()
        print("[devstack] stopped", file=sys.stderr, flush=True)


def customer_keys(settings: StackSettings) -> CustomerKeys:
    return CustomerKeys(settings.data_dir / "customer-auth")


def customer_auth_env(settings: StackSettings) -> dict[str, str]:
    """CUSTOMER_AUTH=jwt without a CUSTOMER_JWKS of one's own: the local key's JWKS (made on
    first use), its issuer and audience. Anything set in the environment wins."""
    if os.environ.get("CUSTOMER_AUTH") != "jwt" or os.environ.get("CUSTOMER_JWKS"):
        return {}
    keys = customer_keys(settings)
    keys.ensure()
    return {name: os.environ.get(name, value) for name, value in keys.app_env().items()}


def customer_auth_hint(stack: Stack) -> str:
    """How to act as a customer (never a token: the banner may end up in a log)."""
    if stack.app_env.get("CUSTOMER_AUTH") == "jwt":
        return (
            "CUSTOMER_AUTH=jwt; a token: .venv/bin/python -m devstack token --sub alice "
            "[--manager], sent as 'Authorization: Bearer <token>'"
        )
    if os.environ.get("CUSTOMER_AUTH") == "jwt":
        return "CUSTOMER_AUTH=jwt with your CUSTOMER_JWKS"
    return "anonymous (CUSTOMER_AUTH=off); CUSTOMER_AUTH=jwt make run requires tokens"


def token(settings: StackSettings, subject: str, manager: bool, ttl_seconds: int) -> None:
    """Print a customer (or manager) token signed with the local key, for CUSTOMER_AUTH=jwt."""
    print(customer_keys(settings).token(subject, manager=manager, ttl_seconds=ttl_seconds))


def manager_token_hint(stack: Stack) -> str:
    """Where the manager token is, never the token itself: the banner may end up in a log."""
    if os.environ.get("MANAGER_TOKEN") or stack.app_env.get("MANAGER_TOKEN"):
        return "manager token: your MANAGER_TOKEN"
    return f"manager token: cat {stack.manager_token_file}"


def observability_addresses(stack: Stack) -> str:
    """The `make run` banner's lines for the metrics, Prometheus and the trace UI."""
    s = stack.settings
    if not s.observability:
        return ""
    return (
        f"  Metrics:  {stack.app_url}/metrics (daprd :{s.dapr_metrics_port},"
        f" placement :{s.placement_metrics_port}, scheduler :{s.scheduler_metrics_port},"
        f" supervisor :{s.supervisor_metrics_port})\n"
        f"  Prometheus: http://127.0.0.1:{s.prometheus_port}/graph\n"
        f"  Traces:   http://127.0.0.1:{s.jaeger_ui_port}/search (Jaeger: service"
        " order-processor-app is the app, order-processor is daprd; tag order.id=<id>)\n"
    )


def _report(line: str) -> None:
    print(f"[devstack] {line}", file=sys.stderr, flush=True)


def images(settings: StackSettings) -> None:
    """Build the local images (only what changed) and print the exports that select them;
    the observability images (Prometheus, Jaeger) only with OBSERVABILITY=true.

    The engine is started if none answers, and left running: the user's compose needs it.
    Standard output carries the exports and nothing else (`eval "$(make -s images)"`).
    """
    with _stdout_to_stderr(), DockerEngine(_report, keep=True):
        jaeger = build_jaeger(settings) if settings.observability else None
        local = build_local_images(build(settings), _report, jaeger)
    for name, value in local.compose_env().items():
        print(f"export {name}={value}", flush=True)


def dapr_images(settings: StackSettings, archive: Path | None) -> None:
    """Build the images Dapr's Helm chart runs (only what changed) from the binaries compiled
    from the pin, and print their names, one a line; with `archive`, also `docker save` them
    there for the cluster's container runtime. The engine is left running, as for `images`."""
    with _stdout_to_stderr(), DockerEngine(_report, keep=True):
        references = build_dapr_kubernetes_images(build(settings), pinned_dapr_version(), _report)
        if archive is not None:
            started = time.monotonic()
            save_images(references, archive)
            _report(
                f"saved {len(references)} images to {archive} in {time.monotonic() - started:.0f}s"
            )
    for reference in references:
        print(reference, flush=True)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at standard error meanwhile, for this process and every child
    it starts (builds, debootstrap, dockerd): whatever they print cannot reach an `eval`."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument(
        "command", choices=["run", "build", "images", "dapr-images", "ensure-tools", "token"]
    )
    parser.add_argument(
        "tools", nargs="*", help=f"for ensure-tools: any of {sorted(DEBIAN_PACKAGES)}"
    )
    parser.add_argument(
        "--save", type=Path, metavar="ARCHIVE", help="for dapr-images: also docker save them here"
    )
    parser.add_argument("--sub", help="for token: the customer (the token's sub claim)")
    parser.add_argument(
        "--manager", action="store_true", help="for token: a manager's (role claim 'manager')"
    )
    parser.add_argument(
        "--ttl", type=int, default=3600, help="for token: seconds until it expires (3600)"
    )
    args = parser.parse_args()
    command = args.command
    settings = StackSettings()
    try:
        if command == "ensure-tools":
            ensure_tools(args.tools)
        elif command == "build":
            print(build(settings))
        elif command == "images":
            images(settings)
        elif command == "dapr-images":
            dapr_images(settings, args.save)
        elif command == "token":
            if not args.sub:
                parser.error("token needs --sub NAME (the customer)")
            token(settings, args.sub, args.manager, args.ttl)
        else:
            ensure_tools(
                [
                    "redis-server",
                    *(["nginx"] if settings.replicas > 1 else []),
                    *(["prometheus"] if settings.observability else []),
                ]
            )
            build(settings)
            if settings.observability:
                build_jaeger(settings)
            raise SystemExit(run(settings))
    except (
        StackError,
        DaprBuildError,
        JaegerBuildError,
        DockerEngineError,
        ImageBuildError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
