"""A real ``redis-server`` for the tests: started on a free loopback port, stopped afterwards.

``make test`` installs Debian's ``redis-server`` when it is missing, so these tests never skip in
CI. The fixture ``redis_server`` (in conftest.py) hands out a :class:`RedisServer`; tests that
need an outage call :meth:`RedisServer.stop` and :meth:`RedisServer.start` (same port, empty
data), or :meth:`RedisServer.pause` / :meth:`RedisServer.resume` (SIGSTOP: connections hang, as
with a server that stopped answering).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from servers import free_port

__all__ = ["RedisServer", "free_port"]


#: Flags every redis-server the tests start gets: nothing written to disk, quiet logs, and (for a
#: server without a password) no protected mode; each server binds loopback only.
EPHEMERAL_FLAGS = ["--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"]


def _send(port: int, command: bytes, timeout: float = 0.5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(command)
        return s.recv(65536)


class RedisServer:
    def __init__(self, port: int | None = None, extra_args: list[str] | None = None) -> None:
        """``extra_args``: more redis-server flags (``["--maxmemory", "4mb"]``)."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(
                "redis-server is not installed; `make test` installs it (apt-get install redis-server)"
            )
        self.exe = exe
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ferrogate-redis-"))
        self.socket_path = str(self.dir / "redis.sock")
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--unixsocket",
                self.socket_path,
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                *EPHEMERAL_FLAGS,
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if _send(self.port, b"PING\r\n").startswith(b"+PONG"):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def command(self, *args: str) -> bytes:
        """Sends one command (RESP) and returns the raw reply, for assertions on stored keys."""
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            parts.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        return _send(self.port, b"".join(parts))

    def flushall(self) -> None:
        assert self.command("FLUSHALL").startswith(b"+OK")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
