"""Django's PostgreSQL backend, with the embedded server started before connecting."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

from etl import database


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params["host"] = database.embedded_socket_dir()
        return params
