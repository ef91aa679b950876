"""Redis topologies other than one plain TCP server: a 3-node Redis Cluster and TLS (a CA made
for the test). Each test starts its own servers on free loopback ports and stops them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ferrogate import ConfigError, Gate, RateLimiter
from redis_server import EPHEMERAL_FLAGS, free_port


def _send(port: int, *args: str) -> bytes:
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, timeout=10, check=False)
    return out.stdout


def _distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _start_nodes(workdir: Path) -> tuple[list[int], list[subprocess.Popen[bytes]]] | None:
    """Three cluster-enabled servers answering PING, or None when one of them exited or they did
    not all answer within 20 s: a port that was free when chosen can be taken (by any process's
    outgoing connection) before the server binds it, and the caller then tries again with other
    ports."""
    # The bus port defaults to port + 10000, past 65535 for most ephemeral ports: choose it too.
    chosen = _distinct_free_ports(6)
    ports, bus_ports = chosen[:3], chosen[3:]
    procs = [
        subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(p),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{p}.conf",
                "--cluster-port",
                str(bus),
                "--dir",
                str(workdir),
                *EPHEMERAL_FLAGS,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p, bus in zip(ports, bus_ports, strict=True)
    ]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            break
        if all(_send(p, "PING").startswith(b"PONG") for p in ports):
            return ports, procs
        time.sleep(0.05)
    _stop(procs)
    return None


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def cluster() -> Iterator[list[int]]:
    """Three masters, no replicas, every slot assigned."""
    workdir = Path(tempfile.mkdtemp(prefix="ferrogate-cluster-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _attempt in range(3):
            started = _start_nodes(workdir)
            if started is not None:
                ports, procs = started
                break
        else:
            pytest.fail("cluster nodes did not start in three attempts with fresh ports")
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *[f"127.0.0.1:{p}" for p in ports],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 20
        while not all(b"cluster_state:ok" in _send(p, "CLUSTER", "INFO") for p in ports):
            assert time.monotonic() < deadline, "cluster did not converge"
            time.sleep(0.1)
        yield ports
    finally:
        _stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)


def test_cluster_counts_exactly_and_spreads_keys(cluster: list[int]) -> None:
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster[:2])  # seeds: any subset
    a = RateLimiter("3/hour", storage=url, name="api")
    b = RateLimiter("3/hour", storage=url, name="api")
    for client in range(30):
        key = f"client-{client}"
        assert [bool(x.hit(key)) for x in (a, b, a, b)] == [True, True, True, False], key
    per_node = [int(_send(p, "DBSIZE").strip() or 0) for p in cluster]
    assert sum(per_node) == 30
    assert sum(1 for n in per_node if n > 0) >= 2, f"keys all on one node: {per_node}"
    # The script is loaded on whichever node owns the key, and again after a flush there.
    for p in cluster:
        _send(p, "SCRIPT", "FLUSH")
    assert not a.hit("client-0")
    assert a.hit("fresh-client")


def test_cluster_through_the_gate(cluster: list[int]) -> None:
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster)
    g = Gate({"rate_limit": {"storage": url}, "routes": [{"path": "/a", "limit": "2/hour"}]})
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a"}
    codes = [g.check({**env, "REMOTE_ADDR": f"192.0.2.{i % 5}"}).status for i in range(15)]
    assert codes.count(0) == 10
    assert codes.count(429) == 5


# -- TLS ------------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_server() -> Iterator[tuple[int, Path]]:
    """redis-server with TLS only, its certificate signed by a CA made here for 'localhost'."""
    d = Path(tempfile.mkdtemp(prefix="ferrogate-tls-"))
    try:
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            cwd=d,
        )
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            cwd=d,
        )
        (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
            cwd=d,
        )
        port = free_port()
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--tls-port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                str(d / "server.pem"),
                "--tls-key-file",
                str(d / "server.key"),
                "--tls-ca-cert-file",
                str(d / "ca.pem"),
                "--tls-auth-clients",
                "no",
                "--dir",
                str(d),
                *EPHEMERAL_FLAGS,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                out = subprocess.run(
                    ["redis-cli", "-p", str(port), "--tls", "--cacert", str(d / "ca.pem"), "PING"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
                if out.stdout.startswith(b"PONG"):
                    break
                assert time.monotonic() < deadline, "TLS redis-server did not start"
                time.sleep(0.05)
            yield port, d
        finally:
            proc.kill()
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tls_with_a_private_ca(tls_server: tuple[int, Path]) -> None:
    port, d = tls_server
    g = Gate(
        {
            "redis": {"url": f"rediss://localhost:{port}/0", "tls_ca_file": str(d / "ca.pem")},
            "rate_limit": {"storage": "redis", "on_error": "deny"},
            "routes": [{"path": "/a", "limit": "1/hour"}],
        }
    )
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "192.0.2.1"}
    assert [g.check(env).status for _ in range(2)] == [0, 429]
    g.ping_redis()


def test_tls_refuses_an_untrusted_server(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    g = Gate(
        {
            "rate_limit": {"storage": f"rediss://localhost:{port}/0", "on_error": "deny"},
            "routes": [{"path": "/a", "limit": "1/hour"}],
        }
    )
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "192.0.2.1"}
    # The system roots do not know the test CA: the handshake fails, the limit fails closed.
    assert g.check(env).status == 503


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"redis\.tls_ca_file"):
        Gate({"redis": {"url": "rediss://h:1", "tls_ca_file": str(tmp_path / "missing.pem")}})
    with pytest.raises(ConfigError, match=r"redis\.tls_ca_file"):
        Gate({"redis": {"url": "redis://h:1", "tls_ca_file": __file__}})
