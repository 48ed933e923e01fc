"""Refuse to serve with unsafe production settings."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from etl.exceptions import ConfigError


def check_node_settings() -> None:
    """A node with DEBUG off needs a real secret key and explicit allowed hosts."""
    if settings.DEBUG:
        return
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to hand out an empty key
        key = ""
    if not key:
        raise ConfigError("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
    if not settings.ALLOWED_HOSTS:
        raise ConfigError("DJANGO_ALLOWED_HOSTS is required when DJANGO_DEBUG is off")
