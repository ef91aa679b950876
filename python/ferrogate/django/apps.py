from __future__ import annotations

from django.apps import AppConfig


class FerroGateConfig(AppConfig):
    name = "ferrogate.django"
    label = "ferrogate"
    verbose_name = "ferrogate"

    def ready(self) -> None:
        from ferrogate.django import checks, state

        checks.register()
        state.connect_signals()
