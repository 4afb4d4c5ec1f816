"""``X-Postline-Deliver-After`` over SMTP: a usable value becomes the Submission's send-at
and the header is taken out; an unusable one is refused with ``550 5.6.0`` naming why, and
nothing is recorded."""

from __future__ import annotations

import time

from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import Running, StartIngest


def message(value: str) -> bytes:
    return (
        b"From: app@example.com\r\nTo: x@dest.test\r\nSubject: later\r\n"
        + f"X-Postline-Deliver-After: {value}\r\n".encode()
        + b"\r\nSee you later.\r\n."
    )


async def send(ingest: Running, data: bytes) -> tuple[int, str]:
    raw = await Raw.open(ingest.port("relay"))
    assert (await raw.reply())[0] == 220
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<x@dest.test>"))[0] == 250
    assert (await raw.cmd("DATA"))[0] == 354
    reply = await raw.cmd(data)
    await raw.close()
    return reply


async def test_a_delay_or_a_time_becomes_the_send_at(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"])
    assert (await send(ingest, message("3600")))[0] == 250
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7200))
    assert (await send(ingest, message(later)))[0] == 250
    # The two may sit on different partitions, which are read in no set order.
    first, second = sorted(await ingest.records(SUBMITTED, 2), key=lambda s: s.received_at)
    assert first.send_at == first.received_at + 3600  # seconds from acceptance
    assert 7000 < second.send_at - second.received_at <= 7200
    for sub in (first, second):
        assert b"deliver-after" not in sub.data.lower()  # never signed nor sent on


async def test_an_unusable_value_is_refused_naming_why(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"])
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    cases = {
        "300000": "more than 72h ahead",
        past: "in the past",
        "next tuesday": "neither an RFC 3339 date-time nor a number of seconds",
        "2030-06-01T09:00:00": "needs a time zone offset",
    }
    for value, why in cases.items():
        code, text = await send(ingest, message(value))
        assert code == 550 and text.startswith("5.6.0 X-Postline-Deliver-After: "), text
        assert why in text, (value, text)
    twice = message("60").replace(b"\r\n\r\n", b"\r\nX-Postline-Deliver-After: 60\r\n\r\n", 1)
    code, text = await send(ingest, twice)
    assert (code, text) == (550, "5.6.0 X-Postline-Deliver-After: given more than once")
    rejected = await ingest.events(5)
    assert {e.check for e in rejected} == {"deliver_after"}
    assert await ingest.records(SUBMITTED, 0, timeout=0.5) == []
