"""``manage.py ferrogate_routes``: every URL pattern with how the gate enforces it and its policy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ferrogate._adapter import report_lines, reports_json
from ferrogate.django import state


class Command(BaseCommand):
    help = "List every URL pattern with how ferrogate enforces it (the gate's pattern, or process_view) and its policy."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        reports = state.compiled().reports
        if options["json"]:
            self.stdout.write(reports_json(reports))
            return
        for line in report_lines(reports, "process_view"):
            self.stdout.write(line)
