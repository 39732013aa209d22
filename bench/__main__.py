"""`make bench`: the service against the engine's own ceiling, on one real local stack.

Three closed-loop modes at each concurrency (1, 10, 30 by default), every client waiting for its
order to finish before placing the next, then an open-loop mode:

1. engine: five trivial activities in series (bench/engine.py), registered by this process's
   own worker on the stack's daprd and driven through the SDK: what the engine itself can do.
2. workflow: the service's own workflow and activities (same worker factory as the app), driven
   through the SDK with no HTTP in front: what the activities' state calls cost.
3. service: daprd restarted, the app started; clients call POST /orders, then
   GET /orders/{id}?wait=30 (the API's long poll, answered when the workflow finishes).
4. open loop on the service: orders arrive at fixed rates, fractions of the engine's throughput
   at the highest concurrency measured in this same run, each rate for 30 s.

Time to completion comes from the engine's and the service's own timestamps (accepted ->
workflow last updated), so it does not include the time the answer takes to reach the client.
Costs per completed order: CPU of each process, and commands Redis processed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dapr.conf import settings as dapr_sdk_settings
from dapr.ext.workflow import WorkflowRuntime, WorkflowStatus
from dapr.ext.workflow.aio import DaprWorkflowClient

from app.config import Settings
from app.domain.orders import new_order
from app.main import order_activities, sidecar_store
from app.observability import configure_logging
from app.services.inventory import InventoryService
from app.services.order_records import OrderRecords
from app.workflows.contracts import WORKFLOW_NAME, OrderInput
from app.workflows.runtime import build_runtime
from app.workflows.worker import WorkerSupervisor
from bench import observability
from bench.engine import SERIES_LENGTH, SERIES_WORKFLOW, register_series
from bench.load import Meter, OneOrder, Run, closed_loop, open_loop
from bench.report import cost_table, latency_table, report
from bench.service import APP_ENV, service_order, stocked_api, warm_up
from devstack.stack import DEFAULT_EXTRAS, SERVICE_ORDER, Extras, Stack, private_stack

ENGINE = ("redis", "placement", "scheduler", "daprd")


async def _run_to_completion(
    client: DaprWorkflowClient, run: Run, workflow: str, instance_id: str, payload: object
) -> None:
    sent = time.perf_counter()
    await client.schedule_new_workflow(workflow, input=payload, instance_id=instance_id)
    run.accept_ms.append((time.perf_counter() - sent) * 1000)
    state = await client.wait_for_workflow_completion(instance_id, timeout_in_seconds=120)
    if state is None or state.runtime_status != WorkflowStatus.COMPLETED:
        raise RuntimeError(f"{workflow} {instance_id} did not complete")
    run.completion_ms.append((state.last_updated_at - state.created_at).total_seconds() * 1000)


def series_order(client: DaprWorkflowClient) -> OneOrder:
    async def one(run: Run) -> None:
        await _run_to_completion(client, run, SERIES_WORKFLOW, f"series-{uuid.uuid4().hex}", 0)

    return one


def workflow_order(client: DaprWorkflowClient, records: OrderRecords) -> OneOrder:
    """The order workflow without HTTP: its record written as POST /orders writes it (the
    activities read and update it), then the workflow scheduled."""

    async def one(run: Run) -> None:
        record = new_order(f"bench-{uuid.uuid4().hex}", "paperclip", 1, 50_000, datetime.now(UTC))
        await records.create(record)
        payload = OrderInput(
            order_id=record.order_id, item=record.item, quantity=record.quantity,
            total_cost=record.total_cost, approval_required=False, approval_timeout_seconds=200,
        )  # fmt: skip
        await _run_to_completion(client, run, WORKFLOW_NAME, record.order_id, payload)

    return one


@dataclass
class Worker:
    client: DaprWorkflowClient
    records: OrderRecords


@asynccontextmanager
async def bench_worker(stack: Stack) -> AsyncIterator[Worker]:
    """This process as the workflow worker: the order workflow with the app's own activities,
    and the engine's series workflow, in one runtime (daprd hands any workflow to any worker
    connected for the app id, so one worker must know both)."""
    settings = Settings(
        dapr_http_port=stack.settings.dapr_http_port,
        dapr_grpc_port=stack.settings.dapr_grpc_port,
        dapr_api_token=stack.settings.dapr_api_token,
    )
    # The SDK's clients read the token from its settings module (set from the environment once).
    dapr_sdk_settings.DAPR_API_TOKEN = stack.settings.dapr_api_token  # type: ignore[attr-defined]
    configure_logging("WARNING")  # as the app's worker logs with the bench's LOG_LEVEL
    store = sidecar_store(settings)
    await InventoryService(store).restock("paperclip", 1_000_000)
    activities = order_activities(store)

    def runtime() -> WorkflowRuntime:
        built = build_runtime(activities, settings.dapr_host, settings.dapr_grpc_port)
        register_series(built)
        return built

    worker = WorkerSupervisor(runtime)
    await asyncio.to_thread(worker.start)
    try:
        client = DaprWorkflowClient(host="127.0.0.1", port=str(settings.dapr_grpc_port))
        yield Worker(client, OrderRecords(store))
    finally:
        await asyncio.to_thread(worker.shutdown)
        await store.aclose()


def meter(stack: Stack, names: tuple[str, ...]) -> Meter:
    pids = {name: stack.pid(name) for name in names} | {"bench": os.getpid()}
    return Meter(pids, stack.settings.redis_port, stack.settings.dapr_metrics_port)


async def measure_engine(stack: Stack, levels: list[int], seconds: float) -> list[Run]:
    runs = []
    costs = meter(stack, ENGINE)
    async with bench_worker(stack) as worker:
        modes = [
            ("engine", series_order(worker.client)),
            ("workflow", workflow_order(worker.client, worker.records)),
        ]
        for mode, one in modes:
            await closed_loop(warm_up(), one, costs)
            for level in levels:
                runs.append(await closed_loop(Run(mode, level, seconds=seconds), one, costs))
    return runs


async def measure_service(
    stack: Stack, levels: list[int], seconds: float, rates: list[float], open_seconds: float
) -> list[Run]:
    runs = []
    costs = meter(stack, SERVICE_ORDER)
    async with stocked_api(stack.app_url) as api:
        one = service_order(api)
        await closed_loop(warm_up(), one, costs)
        for level in levels:
            runs.append(await closed_loop(Run("service", level, seconds=seconds), one, costs))
        for rate in rates:
            runs.append(
                await open_loop(Run("open loop", rate=rate, seconds=open_seconds), one, costs)
            )
    return runs


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=20.0, help="each closed-loop run")
    parser.add_argument("--clients", default="1,10,30", help="closed-loop concurrency levels")
    parser.add_argument("--open-seconds", type=float, default=30.0, help="each open-loop rate")
    parser.add_argument(
        "--fractions", default="0.25,0.5,0.75",
        help="open-loop rates, as fractions of the engine's throughput at the most clients",
    )  # fmt: skip
    parser.add_argument(
        "--engine-only", action="store_true",
        help="only the engine and workflow modes (no app): for comparing engine settings",
    )  # fmt: skip
    for name in ("daprd", "scheduler"):
        parser.add_argument(
            f"--{name}-args", default="", metavar="ARGS",
            help=f"extra command-line flags for {name} (to compare its settings), e.g. "
            + ("'--log-level warn'" if name == "daprd" else "'--etcd-backend-batch-interval 500ms'"),
        )  # fmt: skip
    parser.add_argument(
        "--no-observability", action="store_true",
        help="skip the observability on/off comparison (four more stacks, about 4 minutes)",
    )  # fmt: skip
    args = parser.parse_args()
    levels = [int(level) for level in args.clients.split(",")]
    fractions = [float(fraction) for fraction in args.fractions.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        # The flags under test are given to the stack when it is built, beside its defaults.
        flags = Extras(
            args={"daprd": args.daprd_args.split(), "scheduler": args.scheduler_args.split()}
        )
        stack = private_stack(
            Path(data_dir),
            app_env=APP_ENV,
            extras=(*DEFAULT_EXTRAS, lambda _layout: flags),
        )
        stack.start(ENGINE)
        try:
            runs = await measure_engine(stack, levels, args.seconds)
            ceiling = next(
                run.throughput for run in runs if run.mode == "engine" and run.concurrency == max(levels)
            )  # fmt: skip
            if args.engine_only:
                fractions = []
            else:
                # A fresh daprd for the service: nothing of the engine runs' worker stream left.
                stack.restart("daprd")
                stack.start_service("app")
                rates = [round(fraction * ceiling, 1) for fraction in fractions]
                runs += await measure_service(stack, levels, args.seconds, rates, args.open_seconds)
        finally:
            stack.stop()
    watched = []
    if not args.engine_only and not args.no_observability:
        watched = await observability.measure(max(levels), args.seconds)
    print(f"\nMachine: {platform.node()} ({os.cpu_count()} cores, {platform.machine()}), "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Dapr {stack.version}, command: `make bench` "
          f"(python -m bench --seconds {args.seconds:g} --clients {args.clients} "
          f"--open-seconds {args.open_seconds:g} --fractions {args.fractions}"
          f"{f' --daprd-args {args.daprd_args!r}' if args.daprd_args else ''}"
          f"{f' --scheduler-args {args.scheduler_args!r}' if args.scheduler_args else ''}); "
          f"engine workflow: {SERIES_LENGTH} activities in series\n")  # fmt: skip
    print(report(runs, fractions))
    if watched:
        print(f"\nObservability (service, {max(levels)} clients, {args.seconds:g} s per stack):\n")
        print(latency_table(watched) + "\n\n" + cost_table(watched))
        print("\n" + observability.summary(watched))


if __name__ == "__main__":
    asyncio.run(main())
