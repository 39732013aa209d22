"""The version pins agree with each other, and the stack's ports are distinct and checked."""

from __future__ import annotations

import re
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.build.dapr import go_mod_dapr_version
from devstack.settings import ROOT, StackSettings, pinned_dapr_version
from devstack.stack import Stack, StackError, free_ports


def sdk_pins() -> dict[str, str]:
    """`name==version` pins of the Dapr Python SDK packages in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins: dict[str, str] = {}
    for requirement in project["project"]["dependencies"]:
        match = re.fullmatch(r"(dapr(?:-ext-workflow)?)==(\S+)", requirement.strip())
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def isolated_settings(tmp_path: Path, **overrides: int) -> StackSettings:
    """Every port free right now (then the overrides), data in a temporary folder."""
    aliases = StackSettings.port_variables()
    ports: dict[str, object] = dict(zip(aliases, free_ports(len(aliases)), strict=True))
    return StackSettings.model_validate(
        {**ports, **overrides, "STACK_DATA_DIR": str(tmp_path / "data")}
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port something is listening on for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_runtime_pin_equals_the_go_module_requirement() -> None:
    assert pinned_dapr_version() == go_mod_dapr_version()


def test_python_sdk_packages_are_pinned_to_one_release() -> None:
    pins = sdk_pins()

    assert set(pins) == {"dapr", "dapr-ext-workflow"}
    assert pins["dapr"] == pins["dapr-ext-workflow"]


def test_python_sdk_matches_the_runtime_minor_version() -> None:
    assert major_minor(sdk_pins()["dapr"]) == major_minor(pinned_dapr_version())


def test_pinned_version_is_read_from_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nOTHER=1\nDAPR_VERSION = 9.9.9 \n")

    assert pinned_dapr_version(env_file) == "9.9.9"


def test_missing_pin_is_an_error(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OTHER=1\n")

    with pytest.raises(RuntimeError, match="DAPR_VERSION is not set"):
        pinned_dapr_version(env_file)


def test_default_ports_are_all_different() -> None:
    ports = StackSettings().ports()

    assert len(set(ports.values())) == len(ports)


def test_ports_are_keyed_by_their_environment_variable() -> None:
    ports = StackSettings.model_validate({"APP_PORT": 18_000}).ports()

    assert ports["APP_PORT"] == 18_000
    assert all(re.fullmatch(r"[A-Z_]+_PORT", name) for name in ports)


def test_port_in_use_is_refused_naming_the_port_and_its_variable(
    tmp_path: Path, held_port: int
) -> None:
    stack = Stack(isolated_settings(tmp_path, APP_PORT=held_port))

    with pytest.raises(StackError, match=rf"{held_port} \(APP_PORT\)"):
        stack.check_ports_free()


def test_free_ports_pass_the_check(tmp_path: Path) -> None:
    stack = Stack(isolated_settings(tmp_path))

    stack.check_ports_free()  # fails the test by raising StackError if any port is busy


def test_constructing_a_stack_starts_nothing(tmp_path: Path) -> None:
    stack = Stack(isolated_settings(tmp_path))

    assert all(service.process is None for service in stack.services.values())
    assert not any(stack.is_running(name) for name in stack.services)
    assert not (tmp_path / "data").exists()
