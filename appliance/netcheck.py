"""Is a loopback port free? (Bound with SO_REUSEADDR like uvicorn and HAProxy: TIME_WAIT is not "in use".)"""

from __future__ import annotations

import errno
import socket


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True
