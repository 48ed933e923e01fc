"""The SSH console with a real asyncssh client, against real data in PostgreSQL.

Most tests start the console in-process with the code the node uses (``chat.service``);
one goes through a real ``etl node`` subprocess with ``ETL_SSH_PORT`` set.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db.models import Q
from django.db.models.functions import Now

from cluster import batch, leases, membership
from etl.chat import service, ssh
from etl.chat.config import ChatSettings, SSHSettings
from etl.config import Settings
from ingest import sources
from ingest.models import Item, Observation, Quest, Source, TaskRun, Trade
from tests.support import processes, servers

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 20


@dataclass(frozen=True)
class Keys:
    client: asyncssh.SSHKey
    wrong: asyncssh.SSHKey
    authorized: Path


@dataclass(frozen=True)
class Console:
    port: int
    host_key: Path  # the server's private key file, generated on first start

    def known_hosts(self) -> Any:
        """Trust exactly the host key the server generated."""
        public = asyncssh.read_private_key(self.host_key).export_public_key().decode()
        return asyncssh.import_known_hosts(f"[127.0.0.1]:{self.port} {public}")


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    client = asyncssh.generate_private_key("ssh-ed25519")
    authorized = tmp_path / "authorized_keys"
    authorized.write_bytes(client.export_public_key())
    return Keys(
        client=client, wrong=asyncssh.generate_private_key("ssh-ed25519"), authorized=authorized
    )


def _settings(keys: Keys, tmp_path: Path, port: int = 0) -> ChatSettings:
    return ChatSettings(
        ssh=SSHSettings(
            host="127.0.0.1",
            port=port,
            authorized_keys=keys.authorized,
            host_key=tmp_path / "var" / "ssh_host_ed25519_key",
            generate_host_key=True,
        ),
        discord=None,
    )


@pytest.fixture
async def console(keys: Keys, tmp_path: Path) -> AsyncIterator[Console]:
    settings = _settings(keys, tmp_path)
    chat = await service.start(node="test-node", node_ttl=15, settings=settings)
    assert chat.console is not None
    assert settings.ssh is not None
    try:
        yield Console(port=chat.console.port, host_key=settings.ssh.host_key)
    finally:
        await chat.close()


@dataclass(frozen=True)
class Loaded:
    meta: dict[str, int]
    total: int  # sources registered
    failing: str  # the URL of a source whose fetch fails (404)


def _register(upstream: str) -> tuple[int, str]:
    created, _ = sources.register(sources.parse_specs(httpx.get(f"{upstream}/sources.jsonl").text))
    failing = f"{upstream}/api/no-such-thing.json"
    sources.register([sources.SourceSpec(url=failing, parser="json", options={"key": "id"})])
    return created + 1, failing


@pytest.fixture
async def loaded(upstream_url: str) -> Loaded:
    """The sample upstream ingested for real, plus one source that fails."""
    async with httpx.AsyncClient() as client:
        meta = (await client.get(f"{upstream_url}/api/meta")).json()
    total, failing = await sync_to_async(_register)(upstream_url)
    summary = await batch.run_due(Settings.from_env(), membership.Everything())
    assert [url for url, *_ in summary.failures] == [failing]
    return Loaded(meta=meta, total=total, failing=failing)


def _connect(port: int, key: asyncssh.SSHKey | None, **options: Any) -> Any:
    options.setdefault("known_hosts", None)
    return asyncssh.connect(
        "127.0.0.1",
        port,
        username="ops",
        client_keys=[key] if key is not None else None,
        agent_path=None,
        config=None,
        connect_timeout=TIMEOUT,
        **options,
    )


async def _run(console: Console, keys: Keys, command: str) -> str:
    async with _connect(console.port, keys.client, known_hosts=console.known_hosts()) as conn:
        result = await asyncio.wait_for(conn.run(command, check=True), TIMEOUT)
    assert isinstance(result.stdout, str)
    return result.stdout


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` on the event loop until it holds; fail after TIMEOUT."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _db_counts() -> dict[str, int]:
    return {
        "items": await Item.objects.acount(),
        "observations": await Observation.objects.acount(),
        "quests": await Quest.objects.acount(),
        "trades": await Trade.objects.acount(),
    }


async def test_count_matches_the_database(console: Console, keys: Keys, loaded: Loaded) -> None:
    counts = await _db_counts()
    assert counts == {name: loaded.meta[name] for name in counts}  # real data, really loaded
    reply = await _run(console, keys, "count")
    assert reply == (
        f"There are {counts['items']} items, {counts['observations']} observations, "
        f"{counts['quests']} quests and {counts['trades']} trades.\n"
    )


async def test_status_and_sources(
    console: Console, keys: Keys, loaded: Loaded, make_source: Any
) -> None:
    for i in range(6):  # more than one reply lists; never fetched, so due
        await sync_to_async(make_source)(f"http://zz.test/{i}.json")
    total = loaded.total + 6
    status = await _run(console, keys, "status")
    due = await Source.objects.filter(
        Q(next_run_at__isnull=True) | Q(next_run_at__lte=Now())
    ).acount()
    assert due >= 6
    assert f"sources: {total} registered, {due} due, 0 overdue" in status
    assert "1 failing (sources failing)" in status
    assert f"shards (slot: sources): 0: {total}" in status

    listing = (await _run(console, keys, "sources")).splitlines()
    assert listing[0] == f"15 of {total} sources (by URL):"
    first = await Source.objects.order_by("url").afirst()
    assert first is not None
    assert listing[1].startswith(f"{first.url} — ok, fetched ")
    assert listing[-1] == f"… and {total - 15} more; sources failing lists the failing ones"

    failing = await Source.objects.aget(url=loaded.failing)
    assert "404" in failing.last_error  # the run recorded why
    lines = (await _run(console, keys, "sources failing")).splitlines()
    assert lines[0] == "1 of 1 failing sources (most failures first):"
    assert lines[1].startswith(f"{loaded.failing} — failed x1: ")
    assert " ".join(failing.last_error.split())[:60] in lines[1]
    assert len(lines) == 2


async def test_fetch_makes_the_source_due(console: Console, keys: Keys, loaded: Loaded) -> None:
    before = await Source.objects.aget(url=loaded.failing)
    now = await sync_to_async(leases.db_now)()
    assert before.next_run_at is not None
    assert before.next_run_at > now  # backing off after its failure

    reply = await _run(console, keys, f"fetch {loaded.failing}")
    assert reply.startswith(f"{loaded.failing} is due now")
    after = await Source.objects.aget(url=loaded.failing)
    assert after.next_run_at is not None
    assert after.next_run_at <= await sync_to_async(leases.db_now)()
    assert after.consecutive_failures == before.consecutive_failures  # only the timing changed

    # Due means claimable: the next pass runs it (and nothing else, all else is fresh).
    again = await batch.run_due(Settings.from_env(), membership.Everything())
    assert again.runs == 1
    assert [url for url, *_ in again.failures] == [loaded.failing]

    unknown = await _run(console, keys, "fetch http://nowhere.invalid/x")
    assert unknown.startswith("no source is registered with the URL http://nowhere.invalid/x")


async def test_fetch_of_a_disabled_source_changes_nothing(
    console: Console, keys: Keys, make_source: Any
) -> None:
    later = await sync_to_async(leases.db_now)() + timedelta(hours=1)
    await sync_to_async(make_source)("http://up.test/off.json", enabled=False, next_run_at=later)
    reply = await _run(console, keys, "fetch http://up.test/off.json")
    assert reply.startswith("http://up.test/off.json is disabled")
    row = await Source.objects.aget(url="http://up.test/off.json")
    assert row.next_run_at == later


async def test_help_and_unknown_input(console: Console, keys: Keys, make_source: Any) -> None:
    help_text = await _run(console, keys, "help")
    for usage in ("count", "status", "sources [failing]", "fetch <url>", "exit"):
        assert f"  {usage} " in help_text
    unknown = await _run(console, keys, "rm -rf /")
    assert unknown.startswith("unknown command 'rm'\nshardetl commands:")
    assert "Traceback" not in unknown
    bad = await _run(console, keys, "sources all")
    assert bad.startswith("usage: sources [failing]\n")
    assert await _run(console, keys, "exit") == ""


async def _read_to_prompt(process: Any) -> str:
    text: str = await asyncio.wait_for(process.stdout.readuntil(ssh.PROMPT), TIMEOUT)
    return text.removesuffix(ssh.PROMPT)


async def test_an_interactive_session(console: Console, keys: Keys, loaded: Loaded) -> None:
    counts = await _db_counts()
    async with _connect(console.port, keys.client) as conn:
        process = await conn.create_process(term_type=None)  # ssh -T: no terminal
        banner = await _read_to_prompt(process)
        assert "shardetl node test-node: type help" in banner
        process.stdin.write("count\n")
        assert f"There are {counts['items']} items" in await _read_to_prompt(process)
        process.stdin.write("\n")  # a blank line just prompts again
        assert await _read_to_prompt(process) == ""
        process.stdin.write("sources failing\n")
        assert loaded.failing in await _read_to_prompt(process)
        process.stdin.write("exit\n")
        result = await asyncio.wait_for(process.wait(), TIMEOUT)
        assert result.exit_status == 0

        # End of input closes a session too.
        process = await conn.create_process(term_type=None)
        await _read_to_prompt(process)
        process.stdin.write_eof()
        result = await asyncio.wait_for(process.wait(), TIMEOUT)
        assert result.exit_status == 0


async def test_a_terminal_session_with_line_editing(console: Console, keys: Keys) -> None:
    async with _connect(console.port, keys.client) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(80, 24))
        await _read_to_prompt(process)
        process.stdin.write("stauts\x7f\x7f\x7f\x7fatus\r")  # typo fixed with backspaces
        reply = (await _read_to_prompt(process)).replace("\r\n", "\n")
        assert "N=1, 0 of 0 nodes alive" in reply
        assert "unknown command" not in reply
        process.stdin.write("quit\r")
        result = await asyncio.wait_for(process.wait(), TIMEOUT)
        assert result.exit_status == 0


async def test_a_wrong_key_is_refused(
    console: Console, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="etl.chat.ssh")
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(console.port, keys.wrong):
            pass
    await _run(console, keys, "help")
    await _until(lambda: "SSH: 'ops' logged in from 127.0.0.1" in caplog.text, "login logged")
    await _until(
        lambda: "SSH: 'ops' from 127.0.0.1 did not log in (no authorized key)" in caplog.text,
        "refusal logged",
    )


async def test_password_authentication_is_refused(console: Console, keys: Keys) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(console.port, None, password="hunter2", kbdint_auth=True):
            pass


async def test_authorized_keys_are_read_per_connection(console: Console, keys: Keys) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(console.port, keys.wrong):
            pass
    with keys.authorized.open("ab") as out:
        out.write(keys.wrong.export_public_key())
    async with _connect(console.port, keys.wrong) as conn:  # no restart needed
        result = await asyncio.wait_for(conn.run("help", check=True), TIMEOUT)
    assert "shardetl commands:" in str(result.stdout)


async def test_no_sftp_and_no_forwarding(console: Console, keys: Keys) -> None:
    async with _connect(console.port, keys.client) as conn:
        with pytest.raises((asyncssh.ChannelOpenError, asyncssh.SFTPError)):
            await asyncio.wait_for(conn.start_sftp_client(), TIMEOUT)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", console.port)
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.create_server(lambda *_: None, "127.0.0.1", 0)
        # The connection is still usable afterwards.
        result = await asyncio.wait_for(conn.run("help", check=True), TIMEOUT)
        assert "shardetl commands:" in str(result.stdout)


async def test_the_host_key_is_generated_once_and_kept(keys: Keys, tmp_path: Path) -> None:
    settings = _settings(keys, tmp_path)
    assert settings.ssh is not None
    host_key = settings.ssh.host_key
    assert not host_key.exists()
    fingerprints = []
    for _ in range(2):
        chat = await service.start(node="n", node_ttl=15, settings=settings)
        try:
            assert chat.console is not None
            pinned = Console(port=chat.console.port, host_key=host_key)
            async with _connect(pinned.port, keys.client, known_hosts=pinned.known_hosts()) as conn:
                fingerprints.append(conn.get_server_host_key().get_fingerprint())
        finally:
            await chat.close()
    assert fingerprints[0] == fingerprints[1]
    assert stat.S_IMODE(host_key.stat().st_mode) == 0o600


async def test_closing_ends_open_sessions(keys: Keys, tmp_path: Path) -> None:
    chat = await service.start(node="n", node_ttl=15, settings=_settings(keys, tmp_path))
    assert chat.console is not None
    port = chat.console.port
    async with _connect(port, keys.client) as conn:
        process = await conn.create_process(term_type=None)
        await _read_to_prompt(process)
        await asyncio.wait_for(chat.close(), TIMEOUT)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    with pytest.raises(ConnectionRefusedError):
        async with _connect(port, keys.client):
            pass


def _ssh(port: int, key: asyncssh.SSHKey, command: str) -> str:
    async def run() -> str:
        async with _connect(port, key) as conn:
            result = await asyncio.wait_for(conn.run(command, check=True), TIMEOUT)
        return str(result.stdout)

    return asyncio.run(run())


def test_through_a_real_node(upstream_url: str, keys: Keys, tmp_path: Path) -> None:
    total, failing = _register(upstream_url)
    port, ssh_port = servers.free_port(), servers.free_port()
    env = {
        "ETL_NODE_NAME": "node-chat",
        "ETL_SSH_PORT": str(ssh_port),
        "ETL_SSH_AUTHORIZED_KEYS": str(keys.authorized),
        "ETL_VAR_DIR": str(tmp_path / "var"),
    }
    node = processes.etl("node", "--port", str(port), env=env)
    try:
        processes.wait_for(
            lambda: (
                Source.objects.filter(last_status="ok").count() == total - 1
                and Source.objects.filter(url=failing, last_status="failed").exists()
            ),
            timeout=90,
            what="every source run once",
        )
        assert (tmp_path / "var" / "ssh_host_ed25519_key").is_file()
        counts = {
            "items": Item.objects.count(),
            "observations": Observation.objects.count(),
            "quests": Quest.objects.count(),
            "trades": Trade.objects.count(),
        }
        assert _ssh(ssh_port, keys.client, "count") == (
            f"There are {counts['items']} items, {counts['observations']} observations, "
            f"{counts['quests']} quests and {counts['trades']} trades.\n"
        )
        status = _ssh(ssh_port, keys.client, "status")
        assert "N=1, 1 of 1 nodes alive" in status
        assert "slot 0 node-chat (single): heartbeat" in status
        assert f"sources: {total} registered" in status
        assert f"{failing} — failed x" in _ssh(ssh_port, keys.client, "sources failing")

        runs = TaskRun.objects.filter(source__url=failing)
        before = runs.count()
        assert Source.objects.filter(url=failing, next_run_at__gt=Now()).exists()  # backoff
        assert _ssh(ssh_port, keys.client, f"fetch {failing}").startswith(f"{failing} is due now")
        processes.wait_for(
            lambda: runs.filter(finished_at__isnull=False).count() > before,
            timeout=30,
            what="the node to fetch the source again",
        )
        with pytest.raises(asyncssh.PermissionDenied):
            _ssh(ssh_port, keys.wrong, "count")
    finally:
        code = processes.stop(node)
    assert code == 0


def test_a_node_refuses_ssh_without_authorized_keys(tmp_path: Path) -> None:
    env = {"ETL_SSH_PORT": str(servers.free_port()), "ETL_VAR_DIR": str(tmp_path / "var")}
    node = processes.etl(
        "node", "--port", str(servers.free_port()), env=env, stderr=subprocess.PIPE
    )
    try:
        _, err = node.communicate(timeout=60)
    finally:
        processes.stop(node)
    assert node.returncode != 0
    assert b"ETL_SSH_AUTHORIZED_KEYS" in err
    assert b"Traceback" not in err
