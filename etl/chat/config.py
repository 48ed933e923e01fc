"""Typed access to the chat transports' environment settings (docs/chat.md)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from etl import database
from etl.config import Env
from etl.exceptions import ConfigError

DEFAULT_SSH_HOST = "127.0.0.1"  # a console that changes state is opt-in beyond the host
HOST_KEY_NAME = "ssh_host_ed25519_key"


def _path(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def _ids(name: str) -> frozenset[int]:
    raw = os.environ.get(name, "")
    try:
        return frozenset(int(part) for part in raw.replace(",", " ").split())
    except ValueError:
        raise ConfigError(f"{name} must be a comma-separated list of channel ids") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class SSHSettings:
    """Where the SSH console listens and which keys it trusts."""

    host: str
    port: int
    authorized_keys: Path
    host_key: Path
    # The default host key is created on first use; a key named explicitly must exist,
    # so that a typo does not silently give clients a new host key to distrust.
    generate_host_key: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscordSettings:
    token: str = field(repr=False)
    channels: frozenset[int]  # empty: answer in every channel the bot can read


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettings:
    """Which chat transports to start; ``None`` for a transport that is off."""

    ssh: SSHSettings | None
    discord: DiscordSettings | None

    @classmethod
    def from_env(cls) -> ChatSettings:
        return cls(ssh=_ssh_from_env(), discord=_discord_from_env())


def _ssh_from_env() -> SSHSettings | None:
    port = Env(os.environ).port("ETL_SSH_PORT")
    if port is None:
        return None
    authorized = _path("ETL_SSH_AUTHORIZED_KEYS")
    if authorized is None:
        raise ConfigError(
            "ETL_SSH_AUTHORIZED_KEYS (an authorized_keys file) is required when ETL_SSH_PORT "
            "is set: the SSH console accepts public keys only"
        )
    if not authorized.is_file():
        raise ConfigError(f"ETL_SSH_AUTHORIZED_KEYS: {authorized} is not a readable file")
    host_key = _path("ETL_SSH_HOST_KEY")
    if host_key is not None and not host_key.is_file():
        raise ConfigError(
            f"ETL_SSH_HOST_KEY: {host_key} does not exist (leave the variable unset to use "
            f"a key generated under ETL_VAR_DIR)"
        )
    return SSHSettings(
        host=os.environ.get("ETL_SSH_HOST", "").strip() or DEFAULT_SSH_HOST,
        port=port,
        authorized_keys=authorized,
        host_key=host_key or database.var_dir() / HOST_KEY_NAME,
        generate_host_key=host_key is None,
    )


def _discord_from_env() -> DiscordSettings | None:
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        return None
    if importlib.util.find_spec("discord") is None:
        raise ConfigError(
            "DISCORD_TOKEN is set but discord.py is not installed: pip install 'shardetl[discord]'"
        )
    return DiscordSettings(token=token, channels=_ids("DISCORD_CHANNEL_IDS"))
