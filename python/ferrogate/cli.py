"""``python -m ferrogate``: demo, config checks and route explanations."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ferrogate.exceptions import ConfigError, StoreUnavailableError
from ferrogate.gate import Gate
from ferrogate.tokens import mint

__all__ = ["main"]


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        gate = Gate.from_file(args.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.config}: OK ({len(gate.routes())} routes)")
    if args.deploy:
        _deploy_checks(gate, args.workers)
    stats = gate.redis_stats()
    if stats is not None:
        # Reachability is reported, not required: the gate runs through an outage.
        try:
            gate.ping_redis()
            print(f"redis {stats['url']}: answers PING")
        except StoreUnavailableError as e:
            print(
                f"warning: redis {stats['url']} does not answer ({e}); limits will use on_error",
                file=sys.stderr,
            )
    return 0


def _deploy_workers(flag: int | None) -> int:
    """Worker processes the deployment runs: ``--workers``, else ``FERROGATE_WORKERS``, else
    ``WEB_CONCURRENCY`` (gunicorn's and most platforms' variable), else 1."""
    import os

    if flag is not None:
        return flag
    for name in ("FERROGATE_WORKERS", "WEB_CONCURRENCY"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 1


def _deploy_checks(gate: Gate, workers_flag: int | None) -> None:
    """What would go wrong in production with this config (warnings; the exit code stays 0)."""
    from ferrogate.ratelimit import multiprocess_message

    workers = _deploy_workers(workers_flag)
    if gate.memory_rate_limiters and workers > 1:
        print(
            "warning: " + multiprocess_message(gate.memory_rate_limiters, "the deployment", workers),
            file=sys.stderr,
        )
    elif gate.host_rate_limiters and workers > 1:
        print(
            f"deploy: {gate.host_rate_limiters} rate limit(s) shared by the host's {workers} workers (storage = host)"
        )


def _cmd_explain(args: argparse.Namespace) -> int:
    try:
        gate = Gate.from_file(args.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    method = args.method.upper()
    info = gate.explain(method, args.path)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    outcome = info["outcome"]
    print(f"{method} {args.path} without a token: {info['answer']}")
    if outcome == "route":
        name = f" (name: {info['name']})" if info["name"] else ""
        print(f"{method} {args.path} matches route {info['pattern']}{name}")
        for k, v in info["params"].items():
            print(f"  param {k} = {v!r}")
        print("policy:")
        for k, v in info["policy"].items():
            print(f"  {k} = {v}")
    elif outcome == "method_not_allowed":
        print(
            f"{method} {args.path}: 405 Method Not Allowed; the path matches for {', '.join(info['allow'])}"
        )
    elif outcome == "unmatched":
        print(f"{method} {args.path} matches no route; the defaults apply:")
        for k, v in info["policy"].items():
            print(f"  {k} = {v}")
    else:
        print(f"{method} {args.path}: 400 Bad Request ({info['reason']})")
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from ferrogate.exceptions import InvalidKeyError

    if (args.secret is None) == (args.key_file is None):
        print("give exactly one of --secret or --key-file", file=sys.stderr)
        return 2
    key: str | bytes
    if args.key_file is not None:
        with open(args.key_file, "rb") as f:
            key = f.read()
    else:
        key = args.secret
    try:
        print(
            mint(
                key,
                args.alg,
                sub=args.sub,
                scopes=args.scope,
                ttl=args.ttl,
                claims=args.claim,
                issuer=args.iss,
                audience=args.aud,
            )
        )
    except (InvalidKeyError, ConfigError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret", help="HMAC secret (HS256/384/512)")
    parser.add_argument("--key-file", help="private key PEM (RS*, PS*, ES*, EdDSA)")
    parser.add_argument("--alg", default="HS256")
    parser.add_argument("--sub", default="dev-user")
    parser.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    parser.add_argument("--ttl", type=float, default=3600, help="seconds until exp (default 3600)")
    parser.add_argument("--iss")
    parser.add_argument("--aud")
    parser.add_argument("--claim", action="append", default=[], help="name=value (JSON values parsed)")


def _cmd_demo(args: argparse.Namespace) -> int:
    from ferrogate.demo import run_demo

    return run_demo(app_path=args.app)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferrogate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="run the example Flask API behind the gate and show each policy at work"
    )
    demo.add_argument(
        "--app",
        default=None,
        help="a Flask app module like the example (default: ferrogate/examples/flask_api)",
    )
    demo.set_defaults(func=_cmd_demo)

    check = sub.add_parser("check", help="validate a config file (TOML or JSON)")
    check.add_argument("config")
    check.add_argument(
        "--deploy",
        action="store_true",
        help="also warn about settings that go wrong in production (e.g. in-memory limits under several workers)",
    )
    check.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes per host for --deploy (default: $FERROGATE_WORKERS, else $WEB_CONCURRENCY, else 1)",
    )
    check.set_defaults(func=_cmd_check)

    explain = sub.add_parser("explain", help="say which route and policy apply to METHOD PATH")
    explain.add_argument("config")
    explain.add_argument("method")
    explain.add_argument("path")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(func=_cmd_explain)

    token = sub.add_parser("token", help="mint a development token")
    add_token_arguments(token)
    token.set_defaults(func=_cmd_token)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
