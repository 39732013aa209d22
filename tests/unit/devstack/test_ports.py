"""Busy ports are named with their holder from /proc; ports only connections hold are waited for.

Real sockets of this process hold the ports: what /proc shows of them is what `make run` reads.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devstack.stack.ports import PortsBusy, _hex_address, holders, wait_until_free


@contextmanager
def listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@contextmanager
def outgoing_connection() -> Iterator[tuple[int, int, socket.socket, socket.socket]]:
    """(its local port, the server's port, client, accepted): an open outgoing connection."""
    with listener() as server:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.bind(("127.0.0.1", 0))
        client.connect(server.getsockname())
        accepted, _ = server.accept()
        try:
            yield client.getsockname()[1], server.getsockname()[1], client, accepted
        finally:
            accepted.close()  # the server's side first: the client's port is not left in TIME_WAIT
            client.close()


def my_command() -> str:
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as cmdline:
        return cmdline.read().split(b"\0")[0].decode()


def test_a_listener_is_refused_at_once_with_its_pid_and_command() -> None:
    reports: list[str] = []
    with listener() as sock:
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(PortsBusy) as refused:
            wait_until_free({"DAPR_GRPC_PORT": port}, 30, reports.append)

    assert time.monotonic() - started < 5  # no wait for a port that will not free itself
    message = str(refused.value)
    assert f"{port} (DAPR_GRPC_PORT): listening: pid {os.getpid()} ({my_command()}" in message
    assert "DAPR_GRPC_PORT" in message
    assert reports == []


def test_a_port_an_outgoing_connection_holds_is_waited_for_until_it_is_free() -> None:
    reports: list[str] = []
    with outgoing_connection() as (port, server_port, client, accepted):

        def close_both() -> None:
            accepted.close()
            client.close()

        closer = threading.Timer(1.0, close_both)
        closer.start()
        try:
            wait_until_free({"SCHEDULER_PORT": port}, 30, reports.append)
        finally:
            closer.join()

    assert len(reports) == 1
    assert (
        f"{port} (SCHEDULER_PORT): a connection to 127.0.0.1:{server_port}, established"
        in (reports[0])
    )
    assert f"pid {os.getpid()}" in reports[0]


def test_a_connection_that_stays_open_is_named_when_the_wait_gives_up() -> None:
    with outgoing_connection() as (port, server_port, _, _), pytest.raises(PortsBusy) as refused:
        wait_until_free({"DAPR_INTERNAL_GRPC_PORT": port}, 0.5, lambda line: None)

    message = str(refused.value)
    assert "still held after" in message
    assert f"a connection to 127.0.0.1:{server_port}, established: pid {os.getpid()}" in message


def test_a_closed_connection_in_time_wait_has_no_process() -> None:
    with listener() as server:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.connect(server.getsockname())
        port, server_port = client.getsockname()[1], server.getsockname()[1]
        accepted, _ = server.accept()
        client.close()  # the client's side first: its port stays in TIME_WAIT
        accepted.close()

        # Only ours: the kernel may hand the same local port to another machine's connection
        # to elsewhere meanwhile (a TIME_WAIT port is reusable towards another destination).
        held = [h for h in holders(port) if h.remote == f"127.0.0.1:{server_port}"]

    assert [holder.state for holder in held] == ["time-wait"]
    assert held[0].pid is None
    assert "no process" in held[0].describe()


def test_free_ports_pass_without_a_report() -> None:
    with listener() as sock:
        port = sock.getsockname()[1]
    reports: list[str] = []

    wait_until_free({"APP_PORT": port}, 5, reports.append)

    assert reports == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0100007F:C352", ("127.0.0.1", 50002)),
        ("00000000000000000000000001000000:1F90", ("::1", 8080)),
    ],
)
def test_proc_net_addresses_are_decoded(text: str, address: tuple[str, int]) -> None:
    assert _hex_address(text) == address
