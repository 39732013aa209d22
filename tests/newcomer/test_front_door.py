"""README's first commands, as a newcomer runs them: a fresh copy of the repository, a new venv
made by each supported Python's own bundled pip, `make run` until `/readyz`, the walkthrough,
Ctrl-C, and nothing left running or written where it should not be.

Only Dapr's build cache (outside the repository) may be warm; the Python environment is made
anew for every version, so a dependency's release that breaks the locked install fails here.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.stack.ports import port_in_use
from tests.fixtures.newcomer import (
    MEASUREMENTS,
    Newcomer,
    environment_of,
    fresh_copy,
    newcomer_envs,
    processes_of,
)
from tests.fixtures.pythons import interpreter, supported_versions
from tests.fixtures.readme import walk_through_approval

pytestmark = pytest.mark.newcomer

# A cold install of the lock takes 1-2.5 min on 2 busy cores; the stack then starts in ~20 s.
READY_SECONDS = 600.0
STOP_SECONDS = 90.0
UNIT_SECONDS = 600.0


@pytest.fixture(scope="module")
def journeys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Journey]]]:
    """Every supported Python's journey at once, one thread each: a fresh copy, `make run`
    and the walkthrough, then (other versions) the unit tests. Each is mostly waiting on its
    own processes (pip, the stack, pytest), so side by side they take about half the time of
    one after another; each copy has its own block of ports."""
    versions = supported_versions()
    newcomers = {
        version: Newcomer(
            fresh_copy(tmp_path_factory.mktemp(f"newcomer-{version}") / "order-processor"),
            interpreter(version),
            env,
        )
        for version, env in zip(versions, newcomer_envs(len(versions)), strict=True)
    }
    with ThreadPoolExecutor(max_workers=len(versions)) as pool:
        yield {version: pool.submit(journey, newcomer) for version, newcomer in newcomers.items()}
    for newcomer in newcomers.values():
        shutil.rmtree(newcomer.clone, ignore_errors=True)  # a venv is ~400 MB; three add up


@dataclass
class Journey:
    """How one Python's journey went: None where a part passed, else what it raised."""

    make_run: BaseException | None
    unit_tests: BaseException | None


def journey(newcomer: Newcomer) -> Journey:
    return Journey(
        make_run=_raised(lambda: make_run_serves_the_walkthrough(newcomer)),
        unit_tests=_raised(lambda: unit_tests_pass(newcomer)),
    )


def _raised(part: Callable[[], None]) -> BaseException | None:
    try:
        part()
    except BaseException as error:  # pytest.fail's Failed too: reported by the test
        return error
    return None


def _outcome(journeys: dict[str, Future[Journey]], version: str) -> Journey:
    return journeys[version].result(timeout=READY_SECONDS + 2 * STOP_SECONDS + UNIT_SECONDS)


@pytest.mark.parametrize("version", supported_versions(), ids=lambda version: f"python{version}")
def test_make_run_serves_the_walkthrough_and_ctrl_c_leaves_nothing_behind(
    journeys: dict[str, Future[Journey]], version: str
) -> None:
    failure = _outcome(journeys, version).make_run
    if failure is not None:
        raise failure


@pytest.mark.parametrize("version", supported_versions(), ids=lambda version: f"python{version}")
def test_unit_tests_pass_on_every_other_supported_python(
    journeys: dict[str, Future[Journey]], version: str
) -> None:
    """`make run` proves the install and the stack on each version; the unit tests prove the
    code on the versions `make test` itself does not run on (it runs them on this one)."""
    failure = _outcome(journeys, version).unit_tests
    if failure is not None:
        raise failure


def wait_ready(newcomer: Newcomer, make: subprocess.Popen[bytes], output: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_SECONDS:
        if make.poll() is not None:
            pytest.fail(f"make run exited with {make.returncode}:\n{output.read_text()[-6000:]}")
        try:
            if httpx.get(f"{newcomer.api}/readyz", timeout=2.0).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"/readyz not 200 within {READY_SECONDS:.0f}s:\n{output.read_text()[-6000:]}")


def make_run_serves_the_walkthrough(newcomer: Newcomer) -> None:
    clone, output = newcomer.clone, newcomer.clone.parent / "make-run.out"
    with output.open("wb") as sink:
        make = subprocess.Popen(
            ["make", "run", f"PYTHON={newcomer.python}"],
            cwd=clone,
            env=newcomer.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        ready = wait_ready(newcomer, make, output)
        version = version_of(clone / ".venv" / "bin" / "python")
        assert newcomer.python.name.endswith(version), (newcomer.python, version)

        token_file = clone / ".data" / "manager-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        manager_token = token_file.read_text().strip()
        asyncio.run(walk_through_approval(newcomer.api, manager_token))

        running = processes_of(clone)
        apps = [pid for pid, command in running.items() if "uvicorn app.main" in command]
        assert apps, running
        dapr_api_token = environment_of(apps[0])["DAPR_API_TOKEN"]
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole job
        try:
            make.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    MEASUREMENTS.append(f"python{version}: fresh copy to /readyz (new venv, install) {ready:.0f}s")

    left = processes_of(clone)
    assert left == {}, f"still running after Ctrl-C: {left}"
    bound = {name: int(port) for name, port in newcomer.env.items() if name.endswith("_PORT")}
    assert [name for name, port in bound.items() if port_in_use(port)] == []
    written = [output, *sorted((clone / ".data" / "logs").glob("*.log"))]
    assert len(written) > 5
    for path in written:
        text = path.read_text(errors="replace")
        assert manager_token not in text, f"the manager token is in {path}"
        assert dapr_api_token not in text, f"the Dapr API token is in {path}"
    assert "manager-token" in output.read_text()  # the banner says where the token is


def unit_tests_pass(newcomer: Newcomer) -> None:
    clone, env = newcomer.clone, newcomer.env
    subprocess.run(
        ["make", "-s", "deps", f"PYTHON={newcomer.python}"],
        cwd=clone,
        env=env,
        capture_output=True,
        check=True,
    )
    venv_python = clone / ".venv" / "bin" / "python"
    if version_of(venv_python) == f"{sys.version_info[0]}.{sys.version_info[1]}":
        return  # this very run's unit tests are on this version
    result = subprocess.run(
        [venv_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=UNIT_SECONDS,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]


def version_of(python: Path) -> str:
    return subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
