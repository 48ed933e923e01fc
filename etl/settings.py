"""Django settings: every value comes from the environment (see README's table)."""

from __future__ import annotations

import os
from pathlib import Path

from etl import database, logs

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


DEBUG = _flag("DJANGO_DEBUG")
# Empty with DEBUG off: Django refuses anything that needs it, and `etl node` refuses to
# start (etl/security.py). CLI commands that never sign anything still work.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (
    "django-insecure-shardetl-dev-only" if DEBUG else ""
)
ALLOWED_HOSTS = _list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "cluster",
    "ingest",
    "aggregates",
    "upstream",  # the sample upstream (`etl upstream`, the demo); no models
]

MIDDLEWARE = [
    "etl.probes.ProbeMiddleware",  # first: kubelet and Prometheus use the pod IP as Host
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "etl.urls"
ASGI_APPLICATION = "etl.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "etl" / "templates"],  # the status page (etl is no app)
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database.config(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = database.var_dir() / "static"

# Production hardening; `manage.py check --deploy` is clean with DEBUG off. TLS is
# expected to end at a proxy or ingress that sets X-Forwarded-Proto; probes and scrapes
# reach the pod over plain HTTP, so their paths are not redirected.
SECURE_SSL_REDIRECT = not DEBUG and _flag("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 0 if DEBUG else int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading is a decision for the owner of the domain, not a default: opt in.
SECURE_HSTS_PRELOAD = _flag("DJANGO_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not DEBUG and _flag("ETL_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True

# ETL_LOG_FORMAT=plain (default) or json (one object a line; containers). Either way the
# node and the source are fields of the record (etl/logs.py), not text in the message.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "etl.logs.ContextFilter"}},
    "formatters": {
        "plain": {
            "class": "etl.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "etl.logs.json_formatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": logs.format_name(os.environ),
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("ETL_LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}

# shardetl's own settings are read through etl.config (a typed accessor), not here.
