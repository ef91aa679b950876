"""``flask ferrogate ...`` commands."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext

__all__ = ["ferrogate_cli"]


@click.group("ferrogate", help="ferrogate: inspect the gate's view of this app.")
def ferrogate_cli() -> None:
    pass


@ferrogate_cli.command("routes", help="List every route with how the gate enforces it and its policy.")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@with_appcontext
def routes_command(as_json: bool) -> None:
    from ferrogate.flask import FerroGate

    reports = FerroGate.state(current_app).current().reports
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in reports], indent=2, default=str))
        return
    rows = [("methods", "rule", "endpoint", "enforced as", "policy")]
    for r in sorted(reports, key=lambda r: r.rule):
        how = r.pattern if r.pattern is not None else f"before_request ({r.fallback_reason})"
        policy = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(r.policy.items())) or "defaults"
        methods = "*" if r.methods is None else ",".join(r.methods) or "-"
        rows.append((methods, r.rule, r.endpoint, how, policy))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
