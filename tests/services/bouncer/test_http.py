"""The bouncer's HTTP surfaces under hostile input, over real sockets on 127.0.0.1.

The admin API on its own listener, its input validation and its CSV export; the one-click
endpoint reading a body only for a verified link; busy ports failing the start with one line.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import socket
from pathlib import Path

import pytest

from services.bouncer.main import STAGE, create
from services.bouncer.suppress import address_problem, export_csv
from shared.bus.embedded import EmbeddedBus
from shared.config import load_config
from shared.errors import ListenError
from shared.runtime.process import EXIT_STAGE_FAILED, run_stages
from shared.wire.records import Suppression, SuppressionReason
from shared.wire.tokens import unsubscribe_token
from testing.stage import stage_context
from tests.services.bouncer.conftest import ADMIN_TOKEN, SECRET, Running

AUTH = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
MSGID = "0123456789abcdef0123456789abcdef"
DEADLINE = 10.0  # guards against a hang only


async def exchange(port: int, raw: bytes) -> tuple[int, bytes]:
    """Send ``raw`` (which says ``Connection: close``) and read the answer until EOF.

    Our side stays open: an answer to a request whose body never comes proves the server
    did not wait for it.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def http(method: str, path: str, body: bytes = b"", headers: str = AUTH) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def add(port: int, **fields: str) -> tuple[int, dict[str, object]]:
    status, body = await exchange(
        port, http("POST", "/admin/suppressions", json.dumps(fields).encode())
    )
    return status, json.loads(body)


async def test_admin_api_listens_apart_from_the_public_port(running: Running) -> None:
    assert running.admin_port != running.http_port
    status, _ = await exchange(running.http_port, http("GET", "/admin/suppressions"))
    assert status == 404
    status, _ = await exchange(running.admin_port, http("GET", "/admin/suppressions"))
    assert status == 200
    status, _ = await exchange(running.admin_port, http("GET", "/metrics"))
    assert status == 404  # probes and metrics stay on the process port


async def test_admin_token_is_checked_before_the_body_is_read(running: Running) -> None:
    raw = (
        b"POST /admin/suppressions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer wrong\r\nContent-Length: 1000000\r\n\r\n"
    )
    assert (await exchange(running.admin_port, raw))[0] == 401


async def test_admin_body_past_its_limit_is_413(running: Running) -> None:
    status, _ = await exchange(
        running.admin_port,
        http("POST", "/admin/suppressions", json.dumps({"address": "a" * 100_000}).encode()),
    )
    assert status == 413


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("x" * 250 + "@example.org", "254"),
        ("victim@example.org\r\nX-Injected: 1", "control character"),
        ("nul\x00x@example.org", "control character"),
        ("two@at@example.org", "exactly one @"),
        ("no-at-sign", "local-part@domain"),
        ("a b@example.org", "local part"),
        ("a@exa_mple.org", "domain"),
        ("a@-example.org", "domain label"),
        ("", "empty"),
    ],
)
async def test_admin_add_refuses_a_malformed_address(
    running: Running, address: str, problem: str
) -> None:
    status, answer = await add(running.admin_port, address=address)
    assert status == 400
    assert problem in str(answer["error"])
    assert await running.bus.read_table("postline.suppressions") == {}


async def test_admin_add_refuses_a_control_character_in_scope_or_detail(
    running: Running,
) -> None:
    status, answer = await add(running.admin_port, address="a@example.org", scope="x\r\n.org")
    assert status == 400 and "scope" in str(answer["error"])
    status, answer = await add(running.admin_port, address="a@example.org", detail="a\nb")
    assert status == 400 and "detail" in str(answer["error"])


async def test_admin_accepts_what_rfc_5321_allows(running: Running) -> None:
    for address in ('"john smith"@example.com', "jörg@bücher.example", "a+tag@example.org"):
        status, _ = await add(running.admin_port, address=address)
        assert status == 201, address


async def test_admin_delete_or_get_without_an_address_is_404(running: Running) -> None:
    for method in ("DELETE", "GET"):
        status, body = await exchange(running.admin_port, http(method, "/admin/suppressions/"))
        assert status == 404
        assert json.loads(body) == {"error": "no address in the path"}
    status, _ = await exchange(
        running.admin_port, http("DELETE", "/admin/suppressions/bad%0D%0Aaddr@example.org")
    )
    assert status == 400


async def test_csv_export_neutralises_formulas(running: Running) -> None:
    formula = "=cmd|'/C calc'!A0"
    status, _ = await add(
        running.admin_port, address="=cmd|'/Ccalc'!A0@example.org", detail=formula
    )
    assert status == 201
    status, body = await exchange(running.admin_port, http("GET", "/admin/suppressions.csv"))
    assert status == 200
    (row,) = list(csv.DictReader(io.StringIO(body.decode())))
    assert row["address"] == "'=cmd|'/ccalc'!a0@example.org"
    assert row["detail"] == "'" + formula


def test_csv_cells_starting_like_a_formula_get_a_quote() -> None:
    starts = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]
    records = [
        Suppression(address=f"a{i}@example.org", reason=SuppressionReason.MANUAL, at=1.0, detail=d)
        for i, d in enumerate(starts)
    ]
    rows = list(csv.DictReader(io.StringIO(export_csv(records), newline="")))
    assert [row["detail"] for row in rows] == ["'" + d for d in starts]
    assert rows[0]["address"] == "a0@example.org"  # ordinary cells are untouched


def test_address_problem_length_bounds() -> None:
    assert address_problem("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61) is None
    assert "254" in str(address_problem("a" * 64 + "@" + ("b" * 62 + ".") * 3 + "c" * 4))
    assert "64" in str(address_problem("a" * 65 + "@example.org"))


async def test_one_click_body_is_read_only_for_a_verified_link(running: Running) -> None:
    forged = unsubscribe_token(b"not-the-secret-0123456789", "x@customer.example", "", MSGID)
    raw = (
        f"POST /unsubscribe/{forged} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()
    assert (await exchange(running.http_port, raw))[0] == 404
    token = unsubscribe_token(SECRET, "reader@customer.example", "shop.example", MSGID)
    big = b"List-Unsubscribe=One-Click&pad=" + b"x" * 9000
    status, _ = await exchange(running.http_port, http("POST", "/unsubscribe/" + token, big, ""))
    assert status == 413
    assert await running.bus.read_table("postline.suppressions") == {}


def occupied() -> socket.socket:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken


def with_port(config_path: Path, key: str, port: int) -> Path:
    """The test config with ``key`` (``listen_port``, ``admin_port``, ``http``) set to ``port``."""
    text = config_path.read_text()
    if key == "http":
        text = text.replace("[http]\nport = 0", f"[http]\nport = {port}")
    else:
        text = text.replace(f"{key} = 0", f"{key} = {port}")
    config_path.write_text(text)
    return config_path


@pytest.mark.parametrize("key", ["listen_port", "admin_port"])
async def test_bouncer_port_in_use_names_the_key(config_path: Path, key: str) -> None:
    with occupied() as taken:
        port = taken.getsockname()[1]
        config = load_config(with_port(config_path, key, port))
        bus = EmbeddedBus(config.core.embedded)
        await bus.start()
        try:
            with pytest.raises(ListenError, match=rf"^bouncer\.{key}: cannot listen on .*:{port}"):
                await create(stage_context("bouncer", config, bus))
        finally:
            await bus.close()


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [("bouncer", "listen_port", "stage failed to start"), ("http", "port", "cannot listen")],
)
async def test_runtime_reports_a_busy_port_in_one_line(
    config_path: Path, caplog: pytest.LogCaptureFixture, section: str, key: str, message: str
) -> None:
    with occupied() as taken:
        port = taken.getsockname()[1]
        config = load_config(with_port(config_path, section if section == "http" else key, port))
        caplog.set_level(logging.INFO)
        code = await run_stages([STAGE], config, configure_logging=False)
    assert code == EXIT_STAGE_FAILED
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.message == message and record.exc_info is None
    assert str(getattr(record, "error", "")).startswith(f"{section}.{key}: cannot listen on")
