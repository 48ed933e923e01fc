"""The SSH console: the chat commands over SSH, for public keys in an authorized_keys file.

No shell, no exec of programs, no forwarding, no SFTP/SCP: a session is a line-oriented
loop (prompt, read a line, answer; ``exit``, ``quit`` or EOF closes it), and
``ssh -p PORT HOST count`` answers that one command and exits. The authorized_keys file
is read again for every connection, so adding or removing a key needs no restart; any
user name is accepted, the key alone decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from etl.chat.commands import Commands
from etl.chat.config import SSHSettings
from etl.exceptions import ConfigError

log = logging.getLogger(__name__)

PROMPT = "shardetl> "
IDLE_SECONDS = 900  # an abandoned session does not stay open forever
EXIT_WORDS = frozenset({"exit", "quit"})
EXTRA_HELP = (("exit", "close the session (also: quit, Ctrl-D)"),)


def load_host_key(path: Path, *, generate: bool) -> asyncssh.SSHKey:
    """The server's private host key; with ``generate``, created (ed25519) if missing."""
    if generate and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="shardetl host key")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key())
        try:
            # A hard link never replaces an existing file: of several nodes sharing a
            # var dir and starting together, the first key wins and all use it.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        log.info("generated the SSH host key %s", path)
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise ConfigError(f"cannot read the SSH host key {path}: {exc}") from None


def read_authorized_keys(path: Path) -> asyncssh.SSHAuthorizedKeys:
    try:
        return asyncssh.read_authorized_keys(str(path))
    except (OSError, ValueError) as exc:  # asyncssh.KeyImportError is a ValueError
        raise ConfigError(f"ETL_SSH_AUTHORIZED_KEYS: cannot read {path}: {exc}") from None


class _Server(asyncssh.SSHServer):
    """One connection: public-key authentication against the authorized_keys file."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = "?"
        self._user: str | None = None
        self._logged_in = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else "?"
        self._console.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._console.connections.discard(self._conn)
        if self._user is not None and not self._logged_in:
            log.warning(
                "SSH: %r from %s did not log in (no authorized key)", self._user, self._peer
            )

    def auth_completed(self) -> None:
        self._logged_in = True
        log.info("SSH: %r logged in from %s", self._user, self._peer)

    def begin_auth(self, username: str) -> bool:
        assert self._conn is not None
        self._user = username
        try:
            keys = read_authorized_keys(self._console.settings.authorized_keys)
        except ConfigError:
            # Fail closed: with no trusted keys, every key is refused.
            log.exception("SSH: refusing %r", username)
            keys = asyncssh.import_authorized_keys("")
        self._conn.set_authorized_keys(keys)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False


@dataclass(kw_only=True)
class Console:
    """The SSH server of one node; :meth:`start` it, then :meth:`close` it."""

    commands: Commands
    settings: SSHSettings
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    _acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when the settings say 0)."""
        assert self._acceptor is not None
        return self._acceptor.get_port()

    async def start(self) -> None:
        s = self.settings
        quiet = logging.getLogger("asyncssh")
        if quiet.level == logging.NOTSET:  # ~20 INFO lines per connection; ours say enough
            quiet.setLevel(logging.WARNING)
        host_key = await asyncio.to_thread(load_host_key, s.host_key, generate=s.generate_host_key)
        await asyncio.to_thread(read_authorized_keys, s.authorized_keys)  # fail now, not later
        try:
            self._acceptor = await asyncssh.create_server(
                lambda: _Server(self),
                s.host,
                s.port,
                server_host_keys=[host_key],
                process_factory=self._session,
                public_key_auth=True,
                password_auth=False,
                kbdint_auth=False,
                host_based_auth=False,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_scp=False,
                errors="replace",
            )
        except OSError as exc:
            raise ConfigError(f"ETL_SSH_PORT: cannot listen on {s.host}:{s.port}: {exc}") from None
        log.info(
            "SSH console on %s:%d (host key %s)",
            s.host,
            self.port,
            host_key.get_fingerprint(),
        )

    async def close(self) -> None:
        """Stop listening and end every open session."""
        if self._acceptor is None:
            return
        self._acceptor.close()
        open_now = list(self.connections)
        for conn in open_now:
            conn.close()
        await asyncio.gather(*(conn.wait_closed() for conn in open_now), return_exceptions=True)
        await self._acceptor.wait_closed()
        self._acceptor = None

    async def _session(self, process: asyncssh.SSHServerProcess[str]) -> None:
        user = process.get_extra_info("username")
        peer = process.get_extra_info("peername")
        who = f"ssh:{user}@{peer[0] if peer else '?'}"
        status = 0
        try:
            if process.subsystem:
                process.stderr.write(f"subsystem {process.subsystem!r} is not available\n")
                status = 1
            elif process.command is not None:  # ssh host count
                if process.command.strip().lower() not in EXIT_WORDS:
                    reply = await self.commands.handle(process.command, who=who)
                    process.stdout.write(reply + "\n")
            else:
                await self._interactive(process, who)
        except (asyncssh.Error, BrokenPipeError, ConnectionError):
            return  # the client went away
        with contextlib.suppress(asyncssh.Error, BrokenPipeError, ConnectionError):
            process.exit(status)

    async def _interactive(self, process: asyncssh.SSHServerProcess[str], who: str) -> None:
        process.stdout.write(
            f"shardetl node {self.commands.node}: type help for the commands, exit to leave\n"
        )
        while True:
            process.stdout.write(PROMPT)
            try:
                async with asyncio.timeout(IDLE_SECONDS):
                    line = await process.stdin.readline()
            except asyncssh.TerminalSizeChanged:
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                break
            except TimeoutError:
                process.stdout.write("\nidle for too long, bye\n")
                break
            if not line:  # EOF
                process.stdout.write("\n")
                break
            text = line.strip()
            if not text:
                continue
            if text.lower() in EXIT_WORDS:
                break
            process.stdout.write(await self.commands.handle(text, who=who) + "\n")
