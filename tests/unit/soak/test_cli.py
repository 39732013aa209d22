"""`python -m soak`'s options: flags, or the environment when a flag is not given."""

from __future__ import annotations

import argparse

import pytest

from soak.__main__ import command, parse, seconds_range


def test_a_range_is_low_dash_high_or_one_number() -> None:
    assert seconds_range("20-40") == (20.0, 40.0)
    assert seconds_range("5") == (5.0, 5.0)
    with pytest.raises(argparse.ArgumentTypeError):
        seconds_range("40-20")


def test_the_environment_sets_what_no_flag_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAK_ORDERS", "300")
    monkeypatch.setenv("SOAK_INTERVAL", "5-8")
    monkeypatch.setenv("SOAK_SEED", "42")
    args = parse(["--orders", "200"])
    assert (args.orders, args.interval, args.seed, args.faults) == (200, (5.0, 8.0), 42, None)


def test_the_printed_command_repeats_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOAK_SEED", raising=False)
    args = parse(["--faults", "3"])
    assert parse(command(args).split()[3:]) == args
