"""Errors of the project as a whole."""

from __future__ import annotations


class EtlError(Exception):
    """Base of every shardetl error."""


class ConfigError(EtlError):
    """The environment describes an impossible or unsafe configuration."""
