"""Start and stop the chat transports the environment asks for, with the node runtime."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from etl.chat import discord_bot, queries, ssh
from etl.chat.commands import Commands
from etl.chat.config import ChatSettings

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Chat:
    """The running transports of one node."""

    node: str
    console: ssh.Console | None = None
    bot: discord_bot.Bot | None = None
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop every transport; one that fails to stop does not keep the others open."""
        while self._closers:
            close = self._closers.pop()
            try:
                await close()
            except Exception:
                log.exception("a chat transport did not close cleanly")


async def start(
    *,
    node: str,
    node_ttl: float,
    settings: ChatSettings | None = None,
    store: queries.ClusterStore | None = None,
    discord_client: Any = None,
) -> Chat:
    """Start the SSH console and the Discord bot if configured (ConfigError if misconfigured)."""
    settings = settings if settings is not None else ChatSettings.from_env()
    store = store or queries.Database()
    chat = Chat(node=node)
    try:
        if settings.ssh is not None:
            commands = Commands(
                store=store, node=node, node_ttl=node_ttl, extra_help=ssh.EXTRA_HELP
            )
            chat.console = ssh.Console(commands=commands, settings=settings.ssh)
            await chat.console.start()
            chat._closers.append(chat.console.close)
        if settings.discord is not None:
            chat.bot = _bot(node, node_ttl, settings, store, discord_client)
            await chat.bot.start()
            chat._closers.append(chat.bot.close)
    except BaseException:
        await chat.close()
        raise
    return chat


def _bot(
    node: str, node_ttl: float, settings: ChatSettings, store: queries.ClusterStore, client: Any
) -> discord_bot.Bot:
    assert settings.discord is not None

    async def claim(message: discord_bot.Message) -> bool:
        return await store.claim_message(
            message_id=message.id, sent_at=message.created_at, node=node
        )

    # The default reply limit is Discord's 2,000 characters a message.
    commands = Commands(store=store, node=node, node_ttl=node_ttl, prefix=discord_bot.PREFIX)
    handler = discord_bot.Handler(
        commands=commands,
        claim=claim,
        channels=settings.discord.channels,
        send_options=discord_bot.no_mentions(),
    )
    return discord_bot.Bot(handler=handler, token=settings.discord.token, client=client)
