"""The README's curl walkthrough, run against the real stack exactly as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import httpx

from devstack.settings import ROOT
from devstack.stack import Stack
from tests.fixtures.stack import MANAGER_TOKEN
from tests.fixtures.waiting import eventually


def walkthrough_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert block is not None, "README.md lost its walkthrough block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line.startswith("curl ")]


async def _run(command: str, stack: Stack) -> dict[str, Any]:
    # The block's own API= and TOKEN= lines point at `make run`'s defaults; the test stack runs
    # on other ports with its own token, so those two are supplied here instead.
    env = {**os.environ, "API": stack.app_url, "TOKEN": MANAGER_TOKEN}
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    body: dict[str, Any] = json.loads(stdout)
    return body


async def test_readme_walkthrough_takes_an_order_through_approval(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    create, status, approve, final = walkthrough_commands()
    created = await _run(create, stack)
    assert (created["order_id"], created["approval_required"]) == ("walkthrough-1", True)
    waiting = await eventually(
        lambda: _run(status, stack),
        lambda o: o["step"] == "awaiting_approval",
        what="awaiting approval",
    )
    assert waiting["status"] == "RUNNING"
    approved = await _run(approve, stack)
    assert approved["order_id"] == "walkthrough-1"
    done = await eventually(
        lambda: _run(final, stack), lambda o: o["status"] == "COMPLETED", what="completed"
    )
    assert done["result"] == {"processed": True, "reason": None}
