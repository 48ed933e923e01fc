"""The Discord transport without the network: fake messages, a stand-in client."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from etl.chat import discord_bot, queries, service
from etl.chat.commands import Commands
from etl.chat.config import ChatSettings, DiscordSettings
from etl.exceptions import ConfigError

BOT_ID = 1000
HUMAN = 42


@dataclass(frozen=True)
class FakeAuthor:
    id: int
    bot: bool = False


@dataclass
class FakeChannel:
    id: int = 7
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: BaseException | None = None

    async def send(self, content: str, **options: Any) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((content, options))


@dataclass
class FakeMessage:
    content: str
    author: FakeAuthor = field(default_factory=lambda: FakeAuthor(HUMAN))
    channel: FakeChannel = field(default_factory=FakeChannel)
    id: int = 555
    created_at: datetime = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeStore:
    def __init__(self) -> None:
        self.claimed: list[tuple[int, datetime, str]] = []
        self.winner = True

    async def counts(self) -> queries.Counts:
        return queries.Counts(items=3, observations=2, quests=1, trades=0)

    async def claim_message(self, *, message_id: int, sent_at: datetime, node: str) -> bool:
        self.claimed.append((message_id, sent_at, node))
        return self.winner


class Claims:
    def __init__(self, answer: bool | BaseException = True) -> None:
        self.answer = answer
        self.seen: list[int] = []

    async def __call__(self, message: discord_bot.Message) -> bool:
        self.seen.append(message.id)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _handler(claim: Claims | None = None, channels: frozenset[int] = frozenset()) -> Any:
    commands = Commands(store=FakeStore(), node="node-a", prefix="!")
    return discord_bot.Handler(
        commands=commands,
        claim=claim or Claims(),
        channels=channels,
        send_options={"allowed_mentions": "none"},
    )


COUNT = "There are 3 items, 2 observations, 1 quests and 0 trades."


async def test_a_command_is_answered_in_its_channel() -> None:
    message = FakeMessage("!count")
    assert await _handler().on_message(message, me=BOT_ID) == COUNT
    assert message.channel.sent == [(COUNT, {"allowed_mentions": "none"})]


@pytest.mark.parametrize(
    "message",
    [
        FakeMessage("!count", author=FakeAuthor(BOT_ID, bot=True)),  # our own
        FakeMessage("!count", author=FakeAuthor(BOT_ID)),  # our own, even unflagged
        FakeMessage("!count", author=FakeAuthor(99, bot=True)),  # another bot
        FakeMessage("count"),  # no prefix
        FakeMessage("hello !count"),
        FakeMessage("!"),
        FakeMessage("!   "),
    ],
)
async def test_messages_that_are_not_commands_for_us_are_ignored(message: FakeMessage) -> None:
    claims = Claims()
    assert await _handler(claims).on_message(message, me=BOT_ID) is None
    assert message.channel.sent == []
    assert claims.seen == []  # not even claimed: no database work for chatter


async def test_unknown_commands_get_the_help_with_the_prefix() -> None:
    message = FakeMessage("!dance now")
    reply = await _handler().on_message(message, me=BOT_ID)
    assert reply is not None
    assert reply.startswith("unknown command 'dance'")
    assert "!count" in reply
    assert "!sources [failing]" in reply
    assert len(message.channel.sent) == 1


async def test_only_the_node_that_claims_the_message_answers() -> None:
    message = FakeMessage("!count")
    assert await _handler(Claims(False)).on_message(message, me=BOT_ID) is None
    assert message.channel.sent == []


async def test_a_failed_claim_still_answers(caplog: pytest.LogCaptureFixture) -> None:
    message = FakeMessage("!count")
    with caplog.at_level(logging.ERROR, logger="etl.chat.discord_bot"):
        reply = await _handler(Claims(RuntimeError("db down"))).on_message(message, me=BOT_ID)
    assert reply == COUNT
    assert "could not claim Discord message 555" in caplog.text


async def test_channels_outside_the_allowlist_are_ignored() -> None:
    handler = _handler(channels=frozenset({8}))
    elsewhere = FakeMessage("!count", channel=FakeChannel(id=7))
    allowed = FakeMessage("!count", channel=FakeChannel(id=8))
    assert await handler.on_message(elsewhere, me=BOT_ID) is None
    assert await handler.on_message(allowed, me=BOT_ID) == COUNT


async def test_a_send_that_fails_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    message = FakeMessage("!count", channel=FakeChannel(fail=RuntimeError("403 Forbidden")))
    with caplog.at_level(logging.ERROR, logger="etl.chat.discord_bot"):
        assert await _handler().on_message(message, me=BOT_ID) is None
    assert "403 Forbidden" in caplog.text


class FakeClient:
    """Stands in for discord.Client at the network boundary."""

    def __init__(self, *, refuse: BaseException | None = None) -> None:
        self.user = FakeAuthor(BOT_ID, bot=True)
        self.handlers: dict[str, Any] = {}
        self.tokens: list[str] = []
        self.refuse = refuse
        self.closed = asyncio.Event()
        self.started = asyncio.Event()

    def event(self, coro: Any) -> Any:
        self.handlers[coro.__name__] = coro
        return coro

    async def start(self, token: str) -> None:
        self.tokens.append(token)
        self.started.set()
        if self.refuse is not None:
            raise self.refuse
        await self.closed.wait()

    async def close(self) -> None:
        self.closed.set()


def _settings(channels: frozenset[int] = frozenset()) -> ChatSettings:
    return ChatSettings(ssh=None, discord=DiscordSettings(token="sekrit", channels=channels))


async def test_the_service_wires_a_client_to_the_handler() -> None:
    client = FakeClient()
    store = FakeStore()
    chat = await service.start(
        node="node-a", node_ttl=15, settings=_settings(), store=store, discord_client=client
    )
    try:
        on_message = client.handlers["on_message"]
        assert chat.bot is not None
        assert "sekrit" not in repr(chat.bot)
        mine = FakeMessage("!count", author=client.user)
        await on_message(mine)
        assert mine.channel.sent == []
        theirs = FakeMessage("!count", id=777)
        await on_message(theirs)
        [(reply, options)] = theirs.channel.sent
        assert reply == COUNT
        mentions = options["allowed_mentions"]  # a real discord.AllowedMentions: pings no one
        assert (mentions.everyone, mentions.users, mentions.roles) == (False, False, False)
        assert store.claimed == [(777, theirs.created_at, "node-a")]
        await asyncio.wait_for(client.started.wait(), timeout=10)
        assert client.tokens == ["sekrit"]
    finally:
        await chat.close()
    assert client.closed.is_set()


async def test_a_refused_token_is_logged_and_the_node_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class LoginFailure(Exception):  # named like discord.py's
        pass

    client = FakeClient(refuse=LoginFailure("Improper token has been passed."))
    with caplog.at_level(logging.ERROR, logger="etl.chat.discord_bot"):
        chat = await service.start(
            node="n", node_ttl=15, settings=_settings(), store=FakeStore(), discord_client=client
        )
        assert chat.bot is not None
        assert chat.bot._task is not None
        await asyncio.wait_for(asyncio.shield(chat.bot._task), timeout=10)
        await chat.close()
    assert "Discord refused DISCORD_TOKEN; chat over Discord is off" in caplog.text


async def test_the_real_client_asks_for_message_content() -> None:
    client = discord_bot.build_client()
    try:
        assert client.intents.message_content is True
        assert client.intents.guild_messages is True
    finally:
        await client.close()


def test_a_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "discord", None)  # what an absent package looks like
    with pytest.raises(ConfigError, match=r"pip install 'shardetl\[discord\]'"):
        discord_bot.import_discord()
    monkeypatch.setenv("DISCORD_TOKEN", "t")
    with pytest.raises(ConfigError, match=r"pip install 'shardetl\[discord\]'"):
        ChatSettings.from_env()
