"""Chat settings from the environment: what is off, what is required, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.chat.config import ChatSettings
from etl.exceptions import ConfigError

VARS = (
    "ETL_SSH_PORT",
    "ETL_SSH_HOST",
    "ETL_SSH_HOST_KEY",
    "ETL_SSH_AUTHORIZED_KEYS",
    "DISCORD_TOKEN",
    "DISCORD_CHANNEL_IDS",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ETL_VAR_DIR", str(tmp_path / "var"))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "authorized_keys"
    path.write_text("")
    return path


def test_everything_is_off_by_default() -> None:
    assert ChatSettings.from_env() == ChatSettings(ssh=None, discord=None)


def test_ssh_needs_an_authorized_keys_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_SSH_PORT", "2222")
    with pytest.raises(ConfigError, match=r"ETL_SSH_AUTHORIZED_KEYS .* is required"):
        ChatSettings.from_env()
    monkeypatch.setenv("ETL_SSH_AUTHORIZED_KEYS", "/nonexistent/keys")
    with pytest.raises(ConfigError, match="/nonexistent/keys is not a readable file"):
        ChatSettings.from_env()


def test_ssh_defaults(monkeypatch: pytest.MonkeyPatch, keys_file: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("ETL_SSH_PORT", "2222")
    monkeypatch.setenv("ETL_SSH_AUTHORIZED_KEYS", str(keys_file))
    ssh = ChatSettings.from_env().ssh
    assert ssh is not None
    assert (ssh.host, ssh.port, ssh.authorized_keys) == ("127.0.0.1", 2222, keys_file)
    assert ssh.host_key == (tmp_path / "var" / "ssh_host_ed25519_key").resolve()
    assert ssh.generate_host_key


def test_an_explicit_host_key_must_exist(monkeypatch: pytest.MonkeyPatch, keys_file: Path) -> None:
    monkeypatch.setenv("ETL_SSH_PORT", "2222")
    monkeypatch.setenv("ETL_SSH_AUTHORIZED_KEYS", str(keys_file))
    monkeypatch.setenv("ETL_SSH_HOST_KEY", str(keys_file.parent / "nope"))
    with pytest.raises(ConfigError, match=r"ETL_SSH_HOST_KEY: .*nope does not exist"):
        ChatSettings.from_env()
    monkeypatch.setenv("ETL_SSH_HOST_KEY", str(keys_file))
    monkeypatch.setenv("ETL_SSH_HOST", "0.0.0.0")
    ssh = ChatSettings.from_env().ssh
    assert ssh is not None
    assert (ssh.host, ssh.host_key, ssh.generate_host_key) == ("0.0.0.0", keys_file, False)


@pytest.mark.parametrize("port", ["ssh", "0", "70000", "-1"])
def test_bad_ports_are_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("ETL_SSH_PORT", port)
    with pytest.raises(ConfigError, match="ETL_SSH_PORT"):
        ChatSettings.from_env()


def test_discord_token_and_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("DISCORD_CHANNEL_IDS", "12, 34")
    discord = ChatSettings.from_env().discord
    assert discord is not None
    assert (discord.token, discord.channels) == ("tok", frozenset({12, 34}))
    assert "tok" not in repr(discord)
    monkeypatch.setenv("DISCORD_CHANNEL_IDS", "general")
    with pytest.raises(ConfigError, match="DISCORD_CHANNEL_IDS"):
        ChatSettings.from_env()
