from __future__ import annotations

from django.apps import AppConfig


class AggregatesConfig(AppConfig):
    name = "aggregates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aggregates import jobs  # noqa: F401 - registers the cron job
