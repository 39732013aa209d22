"""Private stacks: the same `Stack` that `make run` starts, on ports free right now and with its
data in a folder of the caller's, for the integration tests, the benchmark and the soak, so that
none of them collides with `make run` or with each other. `private_stack` is the one factory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypedDict, Unpack

from devstack.build.dapr import build
from devstack.build.jaeger import build as build_jaeger
from devstack.settings import StackSettings
from devstack.stack.process import ExtrasFactory
from devstack.stack.replicas import replica_block_size
from devstack.stack.stack import DEFAULT_EXTRAS, Stack, free_port_block, free_ports


def isolated_settings(data_dir: Path, **overrides: object) -> StackSettings:
    """Settings for a private stack: every port free right now, data in `data_dir`, and any
    other settings by their variable names (`ORDER_HISTORY_RETENTION_SECONDS=5`)."""
    variables = StackSettings.port_variables()
    aliases: dict[str, object] = dict(zip(variables, free_ports(len(variables)), strict=True))
    replicas = int(str(overrides.get("REPLICAS", 1)))
    aliases["REPLICA_PORT_BASE"] = free_port_block(replica_block_size(replicas))
    return StackSettings.model_validate({**aliases, "STACK_DATA_DIR": str(data_dir), **overrides})


class PrivateStackOptions(TypedDict, total=False):
    """`private_stack`'s keyword arguments (for the callers that pass them on)."""

    app_env: Mapping[str, str]
    supervise: bool
    replicas: int
    observability: bool
    settings: Mapping[str, object]
    extras: Sequence[ExtrasFactory]
    report: Callable[[str], None]


def private_stack(data_dir: Path, **options: Unpack[PrivateStackOptions]) -> Stack:
    """A stack on free ports with its data in `data_dir`, its binaries built (a digest check
    when they are cached); not started: `with` starts and stops it, or `start(names)` a part.

    `app_env`: the app's environment (MANAGER_TOKEN, LOG_LEVEL, ...); `supervise`: restart what
    exits and replace what hangs, as `make run` does; `replicas`: app + daprd pairs (REPLICAS);
    `observability`: Prometheus and Jaeger beside it (OBSERVABILITY); `settings`: any other
    StackSettings by variable name (WATCHDOG_HANG, ORDER_HISTORY_RETENTION_SECONDS, ...);
    `extras`, `report`: as `Stack` takes them."""
    overrides: dict[str, object] = {
        "REPLICAS": options.get("replicas", 1),
        **options.get("settings", {}),
    }
    if options.get("observability", False):
        overrides["OBSERVABILITY"] = True
    settings = isolated_settings(data_dir, **overrides)
    build(settings)
    if settings.observability:
        build_jaeger(settings)
    return Stack(
        settings,
        app_env=options.get("app_env"),
        report=options.get("report"),
        supervise=options.get("supervise", False),
        extras=options.get("extras", DEFAULT_EXTRAS),
    )
