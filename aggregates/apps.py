from __future__ import annotations

from django.apps import AppConfig


class AggregatesConfig(AppConfig):
    name = "aggregates"
    default_auto_field = "django.db.models.BigAutoField"
