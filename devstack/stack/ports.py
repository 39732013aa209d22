"""Who holds a local TCP port, read from /proc, and a wait for ports that free themselves.

Dapr's default ports (50001-50006) lie inside the kernel's ephemeral range (32768-60999 by
default), so any outgoing connection on the machine can hold one of them for a while as its
local port. Such a hold ends by itself, a listener's does not: `make run` waits for the first
and names the second at once, with its pid and command line, instead of a bare "in use".
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # include/net/tcp_states.h: TCP_LISTEN
_TCP_STATES = {
    "01": "established",
    "02": "syn-sent",
    "03": "syn-received",
    "04": "fin-wait-1",
    "05": "fin-wait-2",
    "06": "time-wait",
    "07": "close",
    "08": "close-wait",
    "09": "last-ack",
    _LISTEN: "listening",
    "0B": "closing",
}
_COMMAND_LIMIT = 160
# A socket in TIME_WAIT (its side closed first) holds its port for this long whatever the
# settings (the kernel's TCP_TIMEWAIT_LEN), and it is certain to end, so it is waited for.
TIME_WAIT_SECONDS = 61.0


def port_in_use(port: int) -> bool:
    """Whether a listener on 127.0.0.1:`port` could not be bound now (as the stack binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class PortHolder:
    """One socket bound to the port: its TCP state and, when one can be found, its process."""

    state: str
    remote: str | None
    pid: int | None
    command: str | None

    @property
    def listening(self) -> bool:
        return self.state == "listening"

    def describe(self) -> str:
        owner = (
            f"pid {self.pid} ({self.command})"
            if self.pid is not None
            else "no process (the kernel's, until it times out)"
        )
        if self.listening:
            return f"listening: {owner}"
        return f"a connection to {self.remote}, {self.state}: {owner}"


def _hex_address(text: str) -> tuple[str, int]:
    """/proc/net/tcp's `0100007F:C352` (little-endian words) as ('127.0.0.1', 50002)."""
    address, _, port = text.partition(":")
    raw = bytes.fromhex(address)
    # The kernel prints each 32-bit word of the address in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def _sockets_on(port: int, proc: Path) -> list[tuple[str, str, int]]:
    """(state, remote address, inode) of every TCP socket whose local port is `port`."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            _, local_port = _hex_address(fields[1])
            if local_port != port:
                continue
            host, remote_port = _hex_address(fields[2])
            state = _TCP_STATES.get(fields[3], fields[3])
            found.append((state, f"{host}:{remote_port}", int(fields[9])))
    return found


def _owners(inodes: set[int], proc: Path) -> dict[int, int]:
    """inode -> pid of a process with that socket open (any one, when several share it)."""
    owners: dict[int, int] = {}
    wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
    if not wanted:
        return owners
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target in wanted:
                owners.setdefault(wanted[target], int(entry.name))
    return owners


def _command(pid: int, proc: Path) -> str | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    if len(command) > _COMMAND_LIMIT:
        command = command[: _COMMAND_LIMIT - 3] + "..."
    return command or None


def holders(port: int, proc: Path = PROC) -> list[PortHolder]:
    """Every socket with `port` as its local port, listeners first."""
    sockets = _sockets_on(port, proc)
    owners = _owners({inode for _, _, inode in sockets}, proc)
    found = []
    for state, remote, inode in sockets:
        pid = owners.get(inode)
        found.append(
            PortHolder(
                state=state,
                remote=None if state == "listening" else remote,
                pid=pid,
                command=_command(pid, proc) if pid is not None else None,
            )
        )
    return sorted(found, key=lambda holder: not holder.listening)


class PortsBusy(RuntimeError):
    """Ports the stack needs are held; the message names each one's holders."""


def describe_busy(busy: Mapping[str, int], proc: Path = PROC) -> str:
    lines = []
    for name, port in busy.items():
        held = holders(port, proc)
        by = "; ".join(holder.describe() for holder in held) or "no socket visible in /proc"
        lines.append(f"  {port} ({name}): {by}")
    return "\n".join(lines)


def wait_until_free(
    ports: Mapping[str, int],
    wait_seconds: float,
    report: Callable[[str], None],
    in_use: Callable[[int], bool] = port_in_use,
    proc: Path = PROC,
) -> None:
    """Return once every port is free; raise PortsBusy at once for a listener, after
    `wait_seconds` for ports that open connections hold, and after TIME_WAIT_SECONDS for
    ports that only closed connections hold (the kernel frees those by then)."""
    started = time.monotonic()
    announced = 0.0
    while True:
        busy = {name: port for name, port in ports.items() if in_use(port)}
        if not busy:
            return
        held = [holder for port in busy.values() for holder in holders(port, proc)]
        closing = bool(held) and all(holder.state == "time-wait" for holder in held)
        limit = max(wait_seconds, TIME_WAIT_SECONDS) if closing else wait_seconds
        waited = time.monotonic() - started
        if any(holder.listening for holder in held) or waited >= limit:
            why = "are listened on" if waited < limit else f"were still held after {waited:.0f}s"
            raise PortsBusy(
                f"ports the stack needs {why}:\n{describe_busy(busy, proc)}\n"
                "Stop whatever holds them, or move the stack with the named variables "
                "(README, Configuration)."
            )
        if limit > announced:
            report(
                f"waiting up to {limit:g}s for ports held by connections, not "
                f"listeners:\n{describe_busy(busy, proc)}"
            )
            announced = limit
        time.sleep(0.2)
