"""Dapr's six programs: one main package each in tools/dapr, built together, stamped with the pin;
and the scheduler's host folders for its local volumes on a single-node cluster."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from devstack.build.dapr import BINARIES, GO_MODULE_DIR, KUBERNETES, STANDALONE, ldflags
from devstack.build.dapr_chart import DAPR_UID, SCHEDULER_REPLICAS, prepare_scheduler_dirs
from devstack.build.go_tool import DAPR


@pytest.mark.parametrize("program", BINARIES)
def test_every_program_is_dapr_s_own_entry_point(program: str) -> None:
    main = (GO_MODULE_DIR / "cmd" / program / "main.go").read_text()
    assert f'import "github.com/dapr/dapr/cmd/{program}/app"' in main
    assert "app.Run()" in main


def test_one_build_makes_what_the_stack_and_the_chart_run() -> None:
    assert DAPR.packages == "./cmd/..."
    assert set(BINARIES) == set(STANDALONE) | set(KUBERNETES)
    assert sorted(path.name for path in (GO_MODULE_DIR / "cmd").iterdir()) == sorted(BINARIES)


def test_binaries_carry_the_version_they_log() -> None:
    flags = ldflags("9.8.7")
    assert "-X github.com/dapr/dapr/pkg/buildinfo.version=9.8.7" in flags
    assert "-X github.com/dapr/kit/logger.DaprVersion=9.8.7" in flags


def test_scheduler_folders_belong_to_dapr_s_user(tmp_path: Path) -> None:
    made = prepare_scheduler_dirs(tmp_path / "scheduler")
    assert [path.name for path in made] == [str(index) for index in range(SCHEDULER_REPLICAS)]
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        if os.geteuid() == 0:
            assert (path.stat().st_uid, path.stat().st_gid) == (DAPR_UID, DAPR_UID)
    # Made again (a restart of the cluster): kept as they are.
    assert prepare_scheduler_dirs(tmp_path / "scheduler") == made
