"""Rate limiting helpers on the Python side: the multi-process warning.

The in-memory store keeps counts in each process. Under a pre-fork server with several worker
processes every worker counts on its own, so a client can get up to *workers* times the quota.
:func:`warn_if_multiprocess` (called when a :class:`~ferrogate.Gate` with rate limits is built)
detects the common servers and says so, recommending ``storage = "host"`` (one count shared by
the host's workers through a file, no server) or Redis when several hosts serve the app.

What is detected, exactly:

* **uWSGI** — the ``uwsgi`` module exists only inside uWSGI; ``uwsgi.numproc`` is the number of
  worker processes.
* **gunicorn** — the process runs gunicorn when ``"gunicorn"`` is in ``sys.modules`` or the
  basename of ``sys.argv[0]`` starts with ``gunicorn``. The worker count is read, first match
  wins, as gunicorn ranks them: from ``sys.argv`` (``-w N``, ``-wN``, ``--workers N``,
  ``--workers=N``), then the same flags in the ``GUNICORN_CMD_ARGS`` environment variable, then
  the config file (``-c``/``--config``, else ``./gunicorn.conf.py``): its top-level
  ``workers = ...`` (a number, or an expression over ``multiprocessing``/``os``, such as
  ``multiprocessing.cpu_count() * 2 + 1``), then ``WEB_CONCURRENCY`` (gunicorn's own default).
* ``FERROGATE_WORKERS`` — set it to the number of processes sharing the config when a server is
  not detected (e.g. mod_wsgi ``processes=``, several containers behind one address is a
  different problem and needs a shared store).
"""

from __future__ import annotations

import ast
import logging
import multiprocessing
import os
import shlex
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from ferrogate.exceptions import InMemoryRateLimitWarning

__all__ = ["detect_worker_processes", "multiprocess_message", "warn_if_multiprocess", "with_worker_count"]

logger = logging.getLogger("ferrogate")


def _workers_flag(args: Sequence[str]) -> int | None:
    found: int | None = None
    it = iter(range(len(args)))
    for i in it:
        a = args[i]
        value: str | None = None
        if a in ("-w", "--workers") and i + 1 < len(args):
            value = args[i + 1]
            next(it, None)
        elif a.startswith("--workers="):
            value = a.split("=", 1)[1]
        elif a.startswith("-w") and not a.startswith("--") and len(a) > 2:
            value = a[2:]
        if value is not None and value.strip().isdigit():
            found = int(value)  # the last occurrence wins, as with argparse
    return found


def _config_flag(args: Sequence[str]) -> str | None:
    """The last ``-c X``, ``-cX``, ``--config X`` or ``--config=X``."""
    found: str | None = None
    for i, a in enumerate(args):
        if a in ("-c", "--config") and i + 1 < len(args):
            found = args[i + 1]
        elif a.startswith("--config="):
            found = a.split("=", 1)[1]
        elif a.startswith("-c") and not a.startswith("--") and len(a) > 2:
            found = a[2:]
    return found


def _workers_in_config(path: str) -> int | None:
    """``workers`` as a gunicorn config file sets it at top level; None when it does not, or when
    its value is more than a number or an expression over ``multiprocessing``/``os``. The file is
    parsed, not run: only that one expression is evaluated."""
    if path.startswith("python:"):
        return None  # a module: gunicorn imports it, and so would we; not worth the side effects
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    value: ast.expr | None = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "workers" for t in node.targets)
        ) or (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "workers"
        ):
            value = node.value
    if value is None:
        return None
    allowed = {
        "multiprocessing": multiprocessing,
        "os": os,
        "__builtins__": {"int": int, "min": min, "max": max},
    }
    try:
        # That one expression, over the names above only (no builtins but int, min and max).
        n = eval(compile(ast.Expression(value), path, "eval"), allowed)
    except Exception:  # whatever it raises, the count is not known
        return None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def detect_worker_processes(
    environ: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    modules: Mapping[str, object] | None = None,
) -> tuple[str, int] | None:
    """``(server, worker_processes)`` when this process looks like one of several workers."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    modules = sys.modules if modules is None else modules
    uwsgi = modules.get("uwsgi")
    if uwsgi is not None:
        n = getattr(uwsgi, "numproc", None)
        if isinstance(n, int):
            return ("uWSGI", n)
    prog = os.path.basename(argv[0]) if argv else ""
    if "gunicorn" in modules or prog.startswith("gunicorn"):
        n = _workers_flag(list(argv[1:]))
        try:
            env_args = shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))
        except ValueError:
            env_args = []
        if n is None:
            n = _workers_flag(env_args)
        if n is None:
            config = _config_flag(list(argv[1:])) or _config_flag(env_args) or "gunicorn.conf.py"
            n = _workers_in_config(config)
        if n is None:
            wc = environ.get("WEB_CONCURRENCY", "").strip()
            n = int(wc) if wc.isdigit() else 1
        return ("gunicorn", n)
    explicit = environ.get("FERROGATE_WORKERS", "").strip()
    if explicit.isdigit():
        return ("FERROGATE_WORKERS", int(explicit))
    return None


def with_worker_count(
    config: Any,
    *,
    environ: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    modules: Mapping[str, object] | None = None,
) -> Any:
    """``config`` with ``rate_limit.workers`` filled in from the detected server, when the limits
    count in a shared store (host file or Redis) and the config does not say: the ``local``
    fallback divides each quota by it.
    Anything that is not a plain config dict is returned as it is (the gate reports it)."""
    if not isinstance(config, dict):
        return config
    rl = config.get("rate_limit")
    if not isinstance(rl, dict) or "workers" in rl:
        return config
    storage = rl.get("storage")
    if not isinstance(storage, str) or storage == "memory":
        return config
    found = detect_worker_processes(environ, argv, modules)
    if found is None or found[1] <= 1:
        return config
    return {**config, "rate_limit": {**rl, "workers": found[1]}}


def multiprocess_message(memory_limiters: int, server: str, workers: int) -> str:
    """What the start-up warning, ``check --deploy`` and Django's W002 say."""
    return (
        f"ferrogate: {memory_limiters} rate limit(s) keep their counts in process memory, but "
        f"{server} runs {workers} worker processes: each worker counts on its own, so a client "
        f"may get up to {workers}x the configured quota. Share the counts between this host's "
        f'workers with [rate_limit] storage = "host" (one file, no server, exact), or across '
        f'hosts with storage = "redis://host:6379/0"; or run a single worker process.'
    )


def warn_if_multiprocess(
    memory_limiters: int,
    *,
    environ: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    modules: Mapping[str, object] | None = None,
) -> str | None:
    """Warns (``warnings`` and the ``ferrogate`` logger) when in-memory limits run in several
    worker processes; returns the message, or None when there is nothing to say."""
    if memory_limiters <= 0:
        return None
    found = detect_worker_processes(environ, argv, modules)
    if found is None or found[1] <= 1:
        return None
    server, workers = found
    msg = multiprocess_message(memory_limiters, server, workers)
    warnings.warn(msg, InMemoryRateLimitWarning, stacklevel=3)
    logger.warning(msg)
    return msg
