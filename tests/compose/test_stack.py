"""The compose stack as a user starts it: the README walkthrough, and a sidecar behind a token."""

from __future__ import annotations

import httpx
import pytest

from tests.compose.project import ComposeProject
from tests.compose.support import MANAGER_TOKEN
from tests.fixtures.readme import walk_through_approval


async def test_readme_walkthrough_takes_an_order_through_approval(
    project: ComposeProject,
) -> None:
    await walk_through_approval(project.app_url, MANAGER_TOKEN)


@pytest.mark.parametrize(
    "headers",
    [{}, {"dapr-api-token": "wrong-token"}, {"dapr-api-token": ""}],
    ids=["missing", "wrong", "empty"],
)
async def test_sidecar_refuses_calls_without_the_api_token(
    project: ComposeProject, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=project.dapr_url, timeout=10.0) as sidecar:
        metadata = await sidecar.get("/v1.0/metadata", headers=headers)
        state = await sidecar.get("/v1.0/state/statestore/inventory:cars", headers=headers)
    assert (metadata.status_code, state.status_code) == (401, 401), metadata.text


async def test_sidecar_answers_calls_with_the_api_token(project: ComposeProject) -> None:
    # The other side of the refusal: the same calls with the project's token get through, and
    # the sidecar counts the app's workflow worker, which connected with that token too.
    async with httpx.AsyncClient(base_url=project.dapr_url, timeout=10.0) as sidecar:
        metadata = await sidecar.get(
            "/v1.0/metadata", headers={"dapr-api-token": project.api_token}
        )
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["workflows"]["connectedWorkers"] >= 1


def test_no_container_log_holds_a_token(project: ComposeProject) -> None:
    # Log shippers collect container output: neither secret may be in it, from start-up on.
    logs = project.logs(tail="all")

    services = {
        line.split("|", 1)[0].strip().split("_")[-2] for line in logs.splitlines() if "|" in line
    }
    assert {"app", "daprd", "redis"} <= services, sorted(services)
    assert MANAGER_TOKEN not in logs
    assert project.api_token not in logs
