"""What a stack is given when it is built (Stack(extras=...)): nobody rewrites its services after."""

from __future__ import annotations

from pathlib import Path

from devstack.stack import Extras, Layout, Service, Stack, isolated_settings


def test_a_stack_takes_its_extras_services_env_and_args_when_built(tmp_path: Path) -> None:
    seen: list[Layout] = []

    def extras(layout: Layout) -> Extras:
        seen.append(layout)
        return Extras(
            services=[Service("extra", ["true"], lambda: False)],
            after="placement",
            app_env={"EXTRA": "1", "MANAGER_TOKEN": "the extra's"},
            args={"daprd": ["--log-level", "debug"]},
        )

    settings = isolated_settings(tmp_path, OBSERVABILITY="false")
    stack = Stack(settings, app_env={"MANAGER_TOKEN": "the caller's"}, extras=(extras,))

    assert [layout.replicas for layout in seen] == [stack.replicas]
    assert stack.service_order == ("redis", "placement", "extra", "scheduler", "daprd", "app")
    assert stack.services["daprd"].argv[-2:] == ["--log-level", "debug"]
    env = stack.services["app"].env
    assert (env["EXTRA"], env["MANAGER_TOKEN"]) == ("1", "the caller's")
    # An extra service is watched by its readiness.
    assert stack.liveness_probe("extra")() == "extra is not ready"


def test_without_extras_a_stack_runs_only_its_own_services(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, OBSERVABILITY="true")
    stack = Stack(settings, extras=())
    assert stack.service_order == ("redis", "placement", "scheduler", "daprd", "app")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in stack.services["app"].env
