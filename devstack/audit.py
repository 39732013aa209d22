"""The auditor's command line (`python -m app.audit --json`) run against a stack as an operator
runs it: with the environment the stack's app runs with (its sidecar's ports and token, and the
app's own settings: the approval timeout sets the auditor's deadlines). The fault tests' final
word and the chaos soak's (`make soak`) verdict."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from devstack.stack import Stack, StackError

CLI_SECONDS = 60.0
# python -m app.audit's exit statuses: every invariant kept, one broken (the report names it).
AUDIT_OK, AUDIT_VIOLATED = 0, 1


def audit_env(stack: Stack) -> dict[str, str]:
    """The environment the stack's app runs with, as far as the auditor reads it."""
    env = {
        **os.environ,
        **stack.app_env,
        "DAPR_HTTP_PORT": str(stack.settings.dapr_http_port),
        "DAPR_GRPC_PORT": str(stack.settings.dapr_grpc_port),
    }
    env.pop("DAPR_API_TOKEN", None)
    if stack.settings.dapr_api_token:
        env["DAPR_API_TOKEN"] = stack.settings.dapr_api_token
    return env


async def audit_cli(stack: Stack, seconds: float = CLI_SECONDS) -> tuple[int, dict[str, Any]]:
    """`python -m app.audit --json` against the stack: its exit status (AUDIT_OK or
    AUDIT_VIOLATED) and its report. StackError when it could not read the store (status 2),
    failed otherwise, or took longer than `seconds`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.audit",
        "--json",
        env=audit_env(stack),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise StackError(f"python -m app.audit took longer than {seconds:.0f}s") from None
    if process.returncode not in (AUDIT_OK, AUDIT_VIOLATED):
        raise StackError(f"python -m app.audit could not run ({process.returncode}): {err!r}")
    report: dict[str, Any] = json.loads(out)
    return process.returncode, report
