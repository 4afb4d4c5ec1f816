"""``postline dead list|show|redrive|purge`` as real processes on an embedded bus file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.wire.records import ClientInfo, DeadLetter, Submission
from shared.wire.topics import DEAD, SUBMITTED
from testing.deadletters import dead_submission

POSTLINE = str(Path(sys.executable).parent / "postline")
DEADLINE = 60.0
AT = 1_790_000_000.0  # 2026-09-21T14:13:20Z
SUB = Submission(
    id="0123456789abcdef0123456789abcdef",
    received_at=1.0,
    client=ClientInfo(ip="192.0.2.1"),
    mail_from="a@shop.test",
    rcpt_to=("b@dest.test",),
    data=b"Subject: x\r\n\r\nhi\r\n",
)


def letter(value: bytes, reason: str, at: float) -> DeadLetter:
    return dead_submission(value, reason, at=at, partition=2, offset=41, key=b"0123")


async def postline(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")}
    proc = await asyncio.create_subprocess_exec(
        POSTLINE,
        *args,
        env=base | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def embedded(tmp_path: Path) -> dict[str, str]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db"))
    await bus.start()
    try:
        await bus.publish(
            [
                DEAD.out(letter(SUBMITTED.encode(SUB), "poison: no recipients", AT)),
                DEAD.out(letter(b"\xc1junk", "decode: not msgpack", AT + 60)),
            ]
        )
    finally:
        await bus.close()
    return {"POSTLINE__EMBEDDED__PATH": str(tmp_path / "bus.db")}


async def test_list_show_redrive_purge(embedded: dict[str, str]) -> None:
    code, out, err = await postline("dead", "list", env=embedded)
    assert code == 0, err
    first, second = out.splitlines()
    assert first.split()[:4] == [
        "0",
        "2026-09-21T14:13:20.000Z",
        "postline.submitted[2]@41",
        "group=postline-signer",
    ]
    assert first.endswith("key=0123  dead  poison: no recipients")
    assert second.endswith("dead  decode: not msgpack")

    code, out, _ = await postline("dead", "show", "0", env=embedded)
    assert code == 0
    assert "reason: poison: no recipients" in out
    assert f'"id": "{SUB.id}"' in out
    code, out, _ = await postline("dead", "show", "1", env=embedded)
    assert "value not decoded: postline.submitted: cannot decode Submission" in out
    assert out.rstrip().endswith("00000000  c1 6a 75 6e 6b")

    code, out, _ = await postline("dead", "redrive", "--all", env=embedded)
    assert code == 3  # one stayed dead
    assert "     0  postline.submitted  ok  back on postline.submitted" in out
    assert "     1  postline.submitted  kept  not redriven: postline.submitted" in out
    assert out.splitlines()[-1] == "1 redriven, 1 left as they were"

    code, out, _ = await postline("dead", "purge", "1", "--why", "junk", env=embedded)
    assert code == 0 and out.splitlines()[-1] == "1 purged, 0 left as they were"
    code, out, _ = await postline("dead", "list", env=embedded)
    assert (code, out) == (0, "no dead letters\n")
    code, out, _ = await postline("dead", "list", "--all", "--json", env=embedded)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["state"], r["note"]) for r in rows] == [
        ("redriven", "back on postline.submitted"),
        ("purged", "junk"),
    ]
    assert all(r["state_by"].startswith("cli:") for r in rows)


async def test_filters_and_bad_input(embedded: dict[str, str]) -> None:
    code, out, _ = await postline("dead", "list", "--topic", "postline.events", env=embedded)
    assert (code, out) == (0, "no dead letters matching\n")
    code, out, _ = await postline(
        "dead", "list", "--since", "2026-09-21T14:14:00Z", "--json", env=embedded
    )
    assert [json.loads(line)["offset"] for line in out.splitlines()] == [1]
    code, _, err = await postline("dead", "redrive", env=embedded)
    assert code == 1 and "redrive: name offsets" in err
    code, _, err = await postline("dead", "show", "9", env=embedded)
    assert code == 1 and "no dead letter at offset 9 of postline.dead" in err
    code, _, err = await postline("dead", "purge", "--older-than", "soon", env=embedded)
    assert code == 1 and "expected a duration" in err
