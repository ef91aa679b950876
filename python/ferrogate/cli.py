"""``python -m ferrogate``: demo, config checks and route explanations."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ferrogate.exceptions import ConfigError
from ferrogate.gate import Gate

__all__ = ["main"]


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        gate = Gate.from_file(args.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.config}: OK ({len(gate.routes())} routes)")
    return 0


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
        "--app", default=None, help="path of the example app module (default: examples/flask_api/app.py)"
    )
    demo.set_defaults(func=_cmd_demo)

    check = sub.add_parser("check", help="validate a config file (TOML or JSON)")
    check.add_argument("config")
    check.set_defaults(func=_cmd_check)

    explain = sub.add_parser("explain", help="say which route and policy apply to METHOD PATH")
    explain.add_argument("config")
    explain.add_argument("method")
    explain.add_argument("path")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(func=_cmd_explain)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
