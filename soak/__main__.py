"""`make soak` (python -m soak): the chaos soak on a private supervised stack, the report on
standard output, exit status 1 if anything failed (soak/__init__.py says what counts).

Every option can also be set from the environment (`SOAK_ORDERS=300 make soak`); the seed is
printed first, so a failing run can be repeated with `--seed`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from devstack.settings import ROOT
from devstack.stack import private_stack
from soak.report import report
from soak.run import SoakOptions, SoakResult, run_soak

log = logging.getLogger("soak")
# Longer than any decision delayed by the faults takes, so "approve" never loses to the timer.
APPROVAL_TIMEOUT_SECONDS = 300
ARTIFACTS = ROOT / ".artifacts"  # git-ignored


def seconds_range(text: str) -> tuple[float, float]:
    """`20-40` (or one number for both ends)."""
    low, _, high = text.partition("-")
    bounds = (float(low), float(high or low))
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: want LOW-HIGH seconds, LOW <= HIGH")
    return bounds


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders",
        type=int,
        default=int(env("SOAK_ORDERS", "3000")),
        help="orders to place (SOAK_ORDERS; default 3000)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=int(env("SOAK_CLIENTS", "16")),
        help="concurrent clients, each following its order to the end (SOAK_CLIENTS; 16)",
    )
    parser.add_argument(
        "--interval",
        type=seconds_range,
        default=env("SOAK_INTERVAL", "20-40"),
        help="seconds between faults, LOW-HIGH (SOAK_INTERVAL; 20-40)",
    )
    parser.add_argument(
        "--freeze",
        type=seconds_range,
        default=env("SOAK_FREEZE", "3-15"),
        help="seconds a SIGSTOPped component stays frozen, LOW-HIGH; the watchdog "
        "replaces one frozen longer than WATCHDOG_HANG, 10 s (SOAK_FREEZE; 3-15)",
    )
    parser.add_argument(
        "--faults",
        type=int,
        default=env("SOAK_FAULTS"),
        help="exactly this many faults (SOAK_FAULTS; default: one every interval while orders run)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=env("SOAK_SEED"),
        help="the orders' fates and the faults (SOAK_SEED; default: random, printed)",
    )
    # (argparse converts a default given as a string, from the environment, with `type`.)
    args = parser.parse_args(argv)  # fmt: skip
    if args.seed is None:
        args.seed = secrets.randbelow(1_000_000)
    return args


def command(args: argparse.Namespace) -> str:
    def span(bounds: tuple[float, float]) -> str:
        return f"{bounds[0]:g}-{bounds[1]:g}"

    faults = f" --faults {args.faults}" if args.faults is not None else ""
    return (
        f"python -m soak --orders {args.orders} --clients {args.clients} "
        f"--interval {span(args.interval)} --freeze {span(args.freeze)}{faults} --seed {args.seed}"
    )


async def soak(args: argparse.Namespace) -> SoakResult:
    options = SoakOptions(
        orders=args.orders, clients=args.clients, interval=args.interval, freeze=args.freeze,
        seed=args.seed, faults=args.faults,
    )  # fmt: skip
    token = secrets.token_urlsafe(24)
    app_env = {
        "MANAGER_TOKEN": token,
        "LOG_LEVEL": "WARNING",
        "APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_SECONDS),
    }
    with tempfile.TemporaryDirectory(prefix="soak-") as data_dir:
        # Binaries built (a digest check when cached); supervised exactly as `make run`
        # supervises (its settings' defaults).
        stack = private_stack(Path(data_dir), app_env=app_env, report=log.info, supervise=True)
        with stack:
            result = await run_soak(stack, token, options)
        if result.problems:
            # The temporary folder goes; the logs of a failed run stay for its diagnosis.
            kept = ARTIFACTS / f"soak-{args.seed}-logs"
            shutil.copytree(stack.settings.log_dir, kept, dirs_exist_ok=True)
            log.error("the stack's logs are kept in %s", kept)
        return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    args = parse(argv)
    print(f"soak: seed {args.seed} (repeat with: {command(args)})", flush=True)
    started = time.monotonic()
    result = asyncio.run(soak(args))
    print(
        f"\nMachine: {platform.node()} ({os.cpu_count()} cores), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.monotonic() - started:.0f} s in all "
        f"(stack start and stop included); command: `{command(args)}`\n"
    )
    print(report(result))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
