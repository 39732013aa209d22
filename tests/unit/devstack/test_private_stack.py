"""The one factory of private stacks (devstack.stack.private_stack): what its callers ask for is
what the stack is built with, and what it runs is built first."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.settings import StackSettings
from devstack.stack import Extras, Layout, private, private_stack


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The builds the factory asked for, in order (none run: no Go here)."""
    asked: list[str] = []

    def build(settings: StackSettings) -> Path:
        asked.append("dapr")
        return settings.dapr_cache_dir

    def build_jaeger(settings: StackSettings) -> Path:
        asked.append("jaeger")
        return settings.jaeger_cache_dir

    monkeypatch.setattr(private, "build", build)
    monkeypatch.setattr(private, "build_jaeger", build_jaeger)
    return asked


def test_a_private_stack_is_built_as_asked_on_ports_of_its_own(
    tmp_path: Path, builds: list[str]
) -> None:
    flags = Extras(args={"daprd-1": ["--log-level", "debug"]})

    stack = private_stack(
        tmp_path,
        app_env={"MANAGER_TOKEN": "t", "LOG_LEVEL": "WARNING"},
        replicas=2,
        supervise=True,
        settings={"ORDER_HISTORY_RETENTION_SECONDS": 5},
        extras=(lambda _layout: flags,),
    )

    assert builds == ["dapr"]
    assert stack.settings.data_dir == tmp_path
    assert (stack.settings.replicas, stack.settings.order_history_retention_seconds) == (2, 5)
    assert stack.settings.app_port != StackSettings().app_port
    assert (stack.app_env["MANAGER_TOKEN"], stack.app_env["LOG_LEVEL"]) == ("t", "WARNING")
    assert stack.supervise
    assert stack.services["daprd-1"].argv[-2:] == ["--log-level", "debug"]
    assert not stack.settings.observability


def test_observability_adds_jaeger_to_the_builds_and_its_extras_to_the_stack(
    tmp_path: Path, builds: list[str]
) -> None:
    stack = private_stack(tmp_path, observability=True)

    assert builds == ["dapr", "jaeger"]
    assert {"jaeger", "prometheus"} <= set(stack.service_order)


def test_the_settings_given_by_name_win_over_the_factory_defaults(
    tmp_path: Path, builds: list[str]
) -> None:
    assert private_stack(tmp_path, settings={"REPLICAS": 3}).settings.replicas == 3


def test_extras_given_replace_the_defaults(tmp_path: Path, builds: list[str]) -> None:
    seen: list[Layout] = []

    def extras(layout: Layout) -> Extras:
        seen.append(layout)
        return Extras()

    stack = private_stack(tmp_path, observability=True, extras=(extras,))

    assert len(seen) == 1
    assert "prometheus" not in stack.service_order
