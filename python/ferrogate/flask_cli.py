"""``flask ferrogate ...`` commands."""

from __future__ import annotations

from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from ferrogate._adapter import report_lines, reports_json
from ferrogate.tokens import mint


def _state() -> Any:
    """The app's extension state. Read from ``app.extensions`` rather than through
    ``ferrogate.flask``, which imports this module: the dependency runs one way."""
    try:
        return current_app.extensions["ferrogate"]
    except KeyError:
        raise click.UsageError("ferrogate is not initialised on this app: call FerroGate(app)") from None


__all__ = ["ferrogate_cli"]


@click.group("ferrogate", help="ferrogate: inspect the gate's view of this app.")
def ferrogate_cli() -> None:
    pass


@ferrogate_cli.command("routes", help="List every route with how the gate enforces it and its policy.")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@with_appcontext
def routes_command(as_json: bool) -> None:
    reports = _state().current().reports
    if as_json:
        click.echo(reports_json(reports))
        return
    for line in report_lines(reports, "before_request"):
        click.echo(line)


@ferrogate_cli.command("token", help="Mint a development token with the app's FERROGATE_JWT HMAC key.")
@click.option("--sub", default="dev-user", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="a scope (repeatable)")
@click.option("--ttl", default=3600.0, show_default=True, help="seconds until exp")
@click.option("--claim", "claims", multiple=True, help="name=value (JSON values parsed)")
@click.option(
    "--key-file", type=click.Path(exists=True, dir_okay=False), help="private key PEM for RS*/ES*/EdDSA"
)
@with_appcontext
def token_command(
    sub: str, scopes: tuple[str, ...], ttl: float, claims: tuple[str, ...], key_file: str | None
) -> None:
    jwt = _state().base_config().get("jwt") or {}
    algorithms = jwt.get("algorithms") or ["HS256"]
    alg = algorithms[0]
    key: str | bytes
    if key_file is not None:
        with open(key_file, "rb") as f:
            key = f.read()
    elif isinstance(jwt.get("key"), str) and not jwt["key"].lstrip().startswith("-----BEGIN"):
        key = jwt["key"]
    else:
        raise click.UsageError("FERROGATE_JWT has no HMAC key: pass --key-file with the private key")
    issuer = jwt.get("issuer")
    audience = jwt.get("audience")
    click.echo(
        mint(
            key,
            alg,
            sub=sub,
            scopes=list(scopes),
            ttl=ttl,
            claims=list(claims),
            issuer=issuer if isinstance(issuer, str) else None,
            audience=audience if isinstance(audience, str) else None,
        )
    )
