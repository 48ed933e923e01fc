"""The environment reader: defaults, and errors that name the variable and the choices."""

from __future__ import annotations

import pytest

from etl.config import Env, Settings
from etl.exceptions import ConfigError

MODES = ("static", "dynamic")


@pytest.mark.parametrize(
    ("env", "chosen"),
    [({}, "static"), ({"MODE": "  "}, "static"), ({"MODE": "Dynamic "}, "dynamic")],
)
def test_choice_reads_case_insensitively_with_a_default(env: dict[str, str], chosen: str) -> None:
    assert Env(env).choice("MODE", "static", MODES) == chosen


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        (("static",), "MODE must be static, got 'sharded'"),
        (MODES, "MODE must be static or dynamic, got 'sharded'"),
        (("a", "b", "c"), "MODE must be a, b or c, got 'sharded'"),
    ],
)
def test_choice_names_what_is_allowed(choices: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        Env({"MODE": "sharded"}).choice("MODE", choices[0], choices)


def test_membership_is_a_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_MEMBERSHIP", "DYNAMIC")
    assert Settings.from_env().membership == "dynamic"
    monkeypatch.setenv("ETL_MEMBERSHIP", "gossip")
    with pytest.raises(ConfigError, match="ETL_MEMBERSHIP must be static or dynamic, got 'gossip'"):
        Settings.from_env()


def test_load_connections_are_read_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read at start with the rest: a bad value stops the node there, not at its first load.
    assert Settings.from_env().load_connections == 2
    monkeypatch.setenv("ETL_LOAD_CONNECTIONS", "4")
    assert Settings.from_env().load_connections == 4
    monkeypatch.setenv("ETL_LOAD_CONNECTIONS", "0")
    with pytest.raises(ConfigError, match="ETL_LOAD_CONNECTIONS"):
        Settings.from_env()
