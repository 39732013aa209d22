"""Runs that share one Docker engine: none waits for another, the last one out stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.images import docker_engine
from devstack.images.docker_engine import DockerEngine


@pytest.fixture
def stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(docker_engine, "STATE_DIR", tmp_path)
    monkeypatch.setattr(docker_engine, "USERS_LOCK", tmp_path / "users.lock")
    monkeypatch.setattr(docker_engine, "START_LOCK", tmp_path / "start.lock")
    monkeypatch.setattr(docker_engine, "engine_answers", lambda: True)
    stopped: list[str] = []
    monkeypatch.setattr(DockerEngine, "_stop_started", lambda self: stopped.append("stopped"))
    return stopped


def test_overlapping_runs_share_the_engine_and_the_last_one_stops_it(stops: list[str]) -> None:
    first, second = DockerEngine(), DockerEngine()
    first.acquire()
    second.acquire()  # would block forever if a run's hold excluded the others
    first.release()
    assert stops == [], "stopped while another run still used it"
    second.release()
    assert stops == ["stopped"]


def test_make_images_leaves_the_engine_to_the_user(stops: list[str]) -> None:
    with DockerEngine(keep=True):
        pass
    assert stops == []
