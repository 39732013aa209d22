"""SIGTERM on the real stack: the app stops taking requests and finishes a create that its
request gave up on (503 at the deadline, the state store frozen) before it exits."""

from __future__ import annotations

import os
import signal

from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean
from tests.fixtures.faults import wait_ready
from tests.fixtures.orders import wait_until_finished
from tests.fixtures.stack import api_client, module_stack
from tests.fixtures.waiting import eventually

PAPERCLIP = {"item": "paperclip", "quantity": 1}


stopping_stack = module_stack("graceful-stop")


async def test_sigterm_waits_for_a_create_its_request_gave_up_on(stopping_stack: Stack) -> None:
    stack = stopping_stack
    app = stack.services["app"].process
    assert app is not None
    log = stack.log_path("app")
    async with api_client(stack) as api:
        await wait_ready(api)
        # A first order takes a block of order numbers: the next create's first write is then
        # its record, which the frozen store holds.
        warm = await api.post("/orders", json={**PAPERCLIP, "order_id": "stop-warm"})
        assert warm.status_code == 202, warm.text
        redis = stack.pid("redis")
        os.kill(redis, signal.SIGSTOP)
        try:
            response = await api.post("/orders", json={**PAPERCLIP, "order_id": "stop-1"})
            assert response.status_code == 503, response.text
            body = response.json()
            assert (body["may_have_happened"], body["order_id"]) == (True, "stop-1"), body

            app.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                return "for create order stop-1" in log.read_text(errors="replace")

            await eventually(draining, bool, deadline_seconds=15, what="the drain began")
            assert app.poll() is None
        finally:
            os.kill(redis, signal.SIGCONT)

        async def exited() -> int | None:
            return app.poll()

        # Within the drain (7 s) plus the worker's stop: well inside devstack's 15 s grace.
        await eventually(exited, lambda code: code is not None, deadline_seconds=20, what="exit")
        text = log.read_text(errors="replace")
        assert "Application shutdown complete" in text
        assert "still unfinished" not in text

        stack.start_service("app")
        await wait_ready(api)
        done = await wait_until_finished(api, "stop-1", 60)
        assert done["result"] == {"processed": True, "reason": None}
        listed = (await api.get("/orders", params={"limit": 100})).json()["orders"]
        assert [o["order_id"] for o in listed].count("stop-1") == 1
        await assert_audit_clean(api, stack)
