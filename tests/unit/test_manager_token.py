"""The manager token comes from MANAGER_TOKEN or a 0600 file, and never reaches a log."""

from __future__ import annotations

import logging
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.config import Settings
from app.manager_token import ManagerTokenError, manager_token


def test_the_configured_token_wins_over_the_file(tmp_path: Path) -> None:
    settings = Settings(manager_token=SecretStr("set"), manager_token_file=tmp_path / "token")

    assert manager_token(settings) == "set"
    assert not (tmp_path / "token").exists()


def test_without_token_or_file_the_service_refuses_to_start() -> None:
    with pytest.raises(ManagerTokenError, match="set MANAGER_TOKEN"):
        manager_token(Settings(manager_token=None, manager_token_file=None))


def test_a_generated_token_goes_to_an_owner_only_file_and_only_its_path_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data" / "manager-token"

    with caplog.at_level(logging.INFO, logger="app"):
        token = manager_token(Settings(manager_token=None, manager_token_file=path))

    assert len(token) >= 32
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in caplog.text
    assert token not in caplog.text
    assert [entry.name for entry in tmp_path.joinpath("data").iterdir()] == ["manager-token"]


def test_an_existing_file_is_read_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "manager-token"
    first = manager_token(Settings(manager_token=None, manager_token_file=path))

    assert manager_token(Settings(manager_token=None, manager_token_file=path)) == first


def test_replicas_starting_together_share_one_token(tmp_path: Path) -> None:
    path = tmp_path / "manager-token"
    settings = Settings(manager_token=None, manager_token_file=path)

    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: manager_token(settings), range(32)))

    assert tokens == {path.read_text().strip()}


def test_a_file_other_users_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "manager-token"
    path.write_text("shared\n")
    path.chmod(0o644)

    with pytest.raises(ManagerTokenError, match=r"mode 0644.*chmod 600"):
        manager_token(Settings(manager_token=None, manager_token_file=path))


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "manager-token"
    path.touch(mode=0o600)

    with pytest.raises(ManagerTokenError, match="is empty"):
        manager_token(Settings(manager_token=None, manager_token_file=path))
