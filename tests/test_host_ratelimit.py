"""``storage = "host"``: the rate-limit store shared by the host's worker processes through one
LMDB file. Same decisions as in memory, shared across processes (and forks), bounded, with clear
errors for unusable paths and recovery from damaged files (a file of an older format: src/ratelimit/host_file.rs's tests)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, InMemoryRateLimitWarning, RateLimiter
from ferrogate.cli import main
from ferrogate.ratelimit import warn_if_multiprocess

T0 = 1_000_000.0


def _host(tmp_path: Path, quota: str, name: str = "t", **kw: Any) -> RateLimiter:
    return RateLimiter(quota, storage="host", path=tmp_path / "limits.mdb", name=name, **kw)


def _fields(r: Any) -> tuple[bool, int, int, float, float]:
    return (r.allowed, r.limit, r.remaining, r.reset_after, r.retry_after)


def test_same_decisions_as_memory(tmp_path: Path) -> None:
    quota = "3/second; 5/minute burst 4"
    host, mem = _host(tmp_path, quota), RateLimiter(quota)
    assert host.storage == "host"
    assert host.path == str(tmp_path / "limits.mdb")
    steps = [(0.0, 1), (0.0, 2), (0.0, 1), (0.3, 1), (0.5, 3), (1.0, 9), (2.0, 1), (20.0, 1), (200.0, 4)]
    for dt, cost in steps:
        assert _fields(host.hit("k", cost, now=T0 + dt)) == _fields(mem.hit("k", cost, now=T0 + dt))
        assert _fields(host.peek("k", now=T0 + dt)) == _fields(mem.peek("k", now=T0 + dt))
    assert len(host) == 2, "one key, two quotas"


def test_two_limiters_on_one_file_share_counts_by_name(tmp_path: Path) -> None:
    a, b = _host(tmp_path, "2/hour"), _host(tmp_path, "2/hour")
    other = _host(tmp_path, "2/hour", name="other")
    assert a.hit("k", now=T0).allowed
    assert b.hit("k", now=T0).allowed
    assert not a.hit("k", now=T0).allowed, "b's hit counted for a"
    assert other.hit("k", now=T0).allowed, "another name is another limit"


def _child(path: str, hits: int, queue: Any) -> None:
    lim = RateLimiter("500/hour", storage="host", path=path, name="mp")
    queue.put(sum(lim.hit("shared", now=T0).allowed for _ in range(hits)))


def test_forked_processes_share_one_exact_count(tmp_path: Path) -> None:
    path = str(tmp_path / "limits.mdb")
    # The parent opens and writes the file before forking: each child must open its own.
    parent = RateLimiter("500/hour", storage="host", path=path, name="mp")
    assert parent.hit("shared", now=T0).allowed
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(path, 300, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    allowed = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(allowed) == 499
    assert not parent.hit("shared", now=T0).allowed, "the parent still works after its forks"


def test_file_and_directory_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    lim = RateLimiter("1/second", storage="host", name="private")
    assert lim.hit("k").allowed
    assert lim.path is not None
    path = Path(lim.path)
    assert path.parent == runtime / "ferrogate"
    assert path.name.startswith("limits-")
    assert path.suffix == ".mdb"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_default_directory_of_another_mode_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    (runtime / "ferrogate").mkdir(parents=True)
    os.chmod(runtime / "ferrogate", 0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with pytest.raises(ConfigError, match="mode 0700"):
        RateLimiter("1/second", storage="host")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.mkdir() or p, id="a directory"),
        pytest.param(lambda p: (p.write_text("x"), p / "limits.mdb")[1], id="under a file"),
        pytest.param(lambda p: Path("/proc/ferrogate/limits.mdb"), id="on /proc"),
    ],
)
def test_unusable_path_is_a_config_error(tmp_path: Path, make: Any) -> None:
    path = make(tmp_path / "x")
    with pytest.raises(ConfigError, match="unusable") as e:
        RateLimiter("1/second", storage="host", path=path)
    assert e.value.issues[0][0] == "path"
    with pytest.raises(ConfigError) as g:
        Gate(
            {
                "rate_limit": {"storage": "host", "host_path": str(path)},
                "routes": [{"path": "/a", "limit": "1/s"}],
            }
        )
    assert g.value.issues[0][0] == "rate_limit.host_path"


def test_config_shape_errors() -> None:
    with pytest.raises(ConfigError) as e:
        Gate({"rate_limit": {"host_path": "/tmp/x.mdb"}})
    assert e.value.issues[0][0] == "rate_limit.host_path"
    with pytest.raises(ConfigError) as e:
        Gate({"rate_limit": {"storage": "host", "host_path": ""}})
    assert e.value.issues[0][0] == "rate_limit.host_path"
    with pytest.raises(ConfigError, match="path= is the file"):
        RateLimiter("1/s", path="/tmp/x.mdb")
    with pytest.raises(ConfigError, match="letters"):
        RateLimiter("1/s", storage="host", name="no spaces", path="/tmp/x.mdb")


def test_damaged_file_is_replaced_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "limits.mdb"
    path.write_bytes(b"not an lmdb file" * 1000)
    with caplog.at_level(logging.WARNING, logger="ferrogate"):
        lim = RateLimiter("2/hour", storage="host", path=path)
    assert any("cannot be read" in r.getMessage() for r in caplog.records)
    assert lim.hit("k", now=T0).allowed
    assert lim.hit("k", now=T0).allowed
    assert not lim.hit("k", now=T0).allowed
    assert (tmp_path / "limits.mdb.damaged").read_bytes().startswith(b"not an lmdb file")


def test_idle_keys_are_pruned_and_the_cap_holds(tmp_path: Path) -> None:
    lim = _host(tmp_path, "10/minute", max_keys=100)
    for i in range(1000):
        lim.hit(f"k{i}", now=T0)
        assert len(lim) <= 100
    assert lim.memory_bytes() > 0
    assert lim.prune(now=T0 + 3600) == len(lim) or len(lim) == 0
    assert len(lim) == 0


def test_gate_storage_host_headers_cost_and_dry_run(tmp_path: Path) -> None:
    config = {
        "rate_limit": {"storage": "host", "host_path": str(tmp_path / "g.mdb")},
        "routes": [
            {"path": "/a", "name": "a", "limit": {"quota": "3/hour", "cost": 2}},
            {"path": "/d", "name": "d", "limit": {"quota": "1/hour", "dry_run": True}},
        ],
    }
    first, second = Gate(config), Gate(config)
    assert (first.host_rate_limiters, first.memory_rate_limiters) == (2, 0)
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "192.0.2.7"}
    d = first.check(env)
    assert d.forward
    assert ("ratelimit", '"a";r=1;t=2400') in d.headers
    # Another gate on the same file (another worker) sees the cost already taken.
    refused = second.check(dict(env))
    assert refused.status == 429
    assert ("retry-after", "1200") in refused.headers
    dry = [first.check({**env, "PATH_INFO": "/d"}) for _ in range(3)]
    assert all(x.forward for x in dry), "dry run never refuses"
    assert [x.dry_run_refused for x in dry] == [None, "d", "d"]


def test_prefork_warning_and_deploy_check_recommend_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.warns(InMemoryRateLimitWarning) as w:
        msg = warn_if_multiprocess(1, environ={}, argv=["gunicorn", "-w", "4"], modules={})
    assert msg is not None
    assert 'storage = "host"' in str(w[0].message)
    monkeypatch.setattr("sys.argv", ["gunicorn", "-w", "4", "app:app"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Gate(
            {
                "rate_limit": {"storage": "host", "host_path": str(tmp_path / "w.mdb")},
                "routes": [{"path": "/a", "limit": "1/s"}],
            }
        )
    monkeypatch.setattr("sys.argv", ["python"])
    memory = tmp_path / "memory.json"
    memory.write_text(json.dumps({"routes": [{"path": "/a", "limit": "1/s"}]}))
    assert main(["check", "--deploy", "--workers", "4", str(memory)]) == 0
    assert 'storage = "host"' in capsys.readouterr().err
    host = tmp_path / "host.json"
    host.write_text(
        json.dumps(
            {
                "rate_limit": {"storage": "host", "host_path": str(tmp_path / "h.mdb")},
                "routes": [{"path": "/a", "limit": "1/s"}],
            }
        )
    )
    assert main(["check", "--deploy", "--workers", "4", str(host)]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err
    assert "shared by the host's 4 workers" in out.out


def test_flask_apps_on_one_file_share_the_count(tmp_path: Path) -> None:
    from ferrogate.flask import FerroGate
    from flask import Flask

    def app() -> Flask:
        a = Flask(__name__)
        a.config["FERROGATE_RATE_LIMIT"] = {"storage": "host", "host_path": str(tmp_path / "flask.mdb")}
        gate = FerroGate(a)

        @a.get("/login")
        @gate.limit("2/hour")
        def login() -> str:
            return "ok"

        return a

    # Two apps stand for two worker processes of one server.
    one, two = app().test_client(), app().test_client()
    assert one.get("/login").status_code == 200
    assert two.get("/login").status_code == 200
    assert one.get("/login").status_code == 429
    assert two.get("/login").status_code == 429


FULL_DISK = """
import sys
from ferrogate import Gate, RateLimiter, StoreUnavailableError

path = sys.argv[1]
lim = RateLimiter("1000/hour", storage="host", path=path, name="fill", max_keys=10_000_000)
gate = Gate({
    "rate_limit": {"storage": "host", "host_path": path},
    "routes": [{"path": "/a", "limit": {"quota": "2/hour", "on_error": "local"}}],
})
env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "192.0.2.1"}
failed_at = None
for i in range(2_000_000):
    try:
        lim.hit(f"key-{i}")
    except StoreUnavailableError as e:
        failed_at = i
        print("full:", e, file=sys.stderr)
        break
assert failed_at is not None and failed_at > 1000, failed_at
# The gate's limit on the full file falls back to counting in this process: no 500, no crash.
print([gate.check(env).status for _ in range(3)])
"""


def test_a_full_file_system_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """Pages are written through a shared map: without blocks allocated ahead, a full file system
    would kill the process with SIGBUS. A 16 MiB tmpfs fills up long before the map does."""
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        script = tmp_path / "fill.py"
        script.write_text(FULL_DISK)
        done = subprocess.run(
            [sys.executable, str(script), str(mnt / "limits.mdb")],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "full:" in done.stderr
    assert done.stdout.strip() == "[0, 0, 429]"


def test_the_storage_page_examples_run() -> None:
    import re

    page = (Path(__file__).parent.parent / "docs" / "storage.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/storage.md", "exec"), {})
    configs = re.findall(r"```toml\n(.*?)```", page, re.S)
    import tomllib

    for text in configs:
        assert tomllib.loads(text)["rate_limit"]["storage"] == "host"


def test_threads_share_one_exact_count(tmp_path: Path) -> None:
    import threading

    lim = _host(tmp_path, "300/hour")
    allowed: list[int] = []

    def worker() -> None:
        allowed.append(sum(lim.hit("shared", now=T0).allowed for _ in range(100)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 300


def test_a_fork_python_never_saw_reopens_the_file_in_the_child(tmp_path: Path) -> None:
    """A fork from C (as uWSGI's) runs no ``os.register_at_fork`` hook: the child finds the
    parent's open environment, drops it and opens its own."""
    import ctypes

    lim = _host(tmp_path, "10/hour")
    assert lim.hit("k", now=T0).allowed  # the parent holds the file open
    libc = ctypes.CDLL(None, use_errno=True)
    pid = libc.fork()
    if pid == 0:  # pragma: no cover (the child reports through its exit code)
        try:
            ok = lim.hit("k", now=T0).allowed and len(lim) == 1
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    assert pid > 0
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lim.hit("k", now=T0).remaining == 7, "parent, child, parent: three hits counted once each"
