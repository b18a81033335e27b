"""Where a TCP port is listening on this machine, from the kernel (/proc/net/tcp, tcp6) — not from a record.

Why: `status` and `endpoint` must tell the truth about whether the front door is reachable from the LAN. The
state file says what the appliance meant to do; a reload, a crash or an older record can make that wrong. The
kernel's socket table is what other machines actually see.
"""

from __future__ import annotations

import socket
import struct

_LISTEN = "0A"


def _addr4(hexaddr: str) -> str:
    return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hexaddr, 16)))


def _addr6(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def listening_hosts(port: int, tables: tuple[str, str] = TABLES) -> set[str]:
    """The local addresses with a socket listening on `port` (e.g. {"127.0.0.1"}, {"0.0.0.0"}, {"::"})."""
    out: set[str] = set()
    local = f":{port:04X} "  # the local address ends with it; a busy front door has thousands of lines to skip
    for table, conv in zip(tables, (_addr4, _addr6)):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    if local not in line:
                        continue
                    parts = line.split()
                    if len(parts) < 4 or parts[3] != _LISTEN:
                        continue
                    host, _, p = parts[1].partition(":")
                    if int(p, 16) == port:
                        out.add(conv(host))
        except (OSError, ValueError):
            continue
    return out


def reachable_from_lan(hosts: set[str]) -> bool:
    """Listening on anything but loopback."""
    return any(not (h.startswith("127.") or h == "::1") for h in hosts)
