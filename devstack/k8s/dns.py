"""One DNS question over UDP, enough to ask CoreDNS whether a Service name resolves (no DNS
library in the project's dependencies, and an A query is a few dozen bytes)."""

from __future__ import annotations

import secrets
import socket
import struct

_A, _IN = 1, 1


def _question(name: str) -> tuple[int, bytes]:
    ident = secrets.randbelow(0x10000)
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # recursion desired, 1 question
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return ident, header + labels + b"\0" + struct.pack("!HH", _A, _IN)


def _skip_name(message: bytes, offset: int) -> int:
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def resolve_a(server: str, name: str, timeout: float = 2.0, port: int = 53) -> list[str]:
    """The IPv4 addresses `server` answers for `name`; [] for no answer or an error code."""
    ident, query = _question(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, (server, port))
            reply, _ = sock.recvfrom(4096)
        except OSError:
            return []
    got_ident, flags, questions, answers = struct.unpack("!HHHH", reply[:8])
    if got_ident != ident or flags & 0x000F:
        return []
    offset = 12
    for _ in range(questions):
        offset = _skip_name(reply, offset) + 4
    addresses = []
    for _ in range(answers):
        offset = _skip_name(reply, offset)
        kind, _klass, _ttl, length = struct.unpack("!HHIH", reply[offset : offset + 10])
        offset += 10
        if kind == _A and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return addresses
