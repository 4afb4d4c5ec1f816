"""The null reverse-path ``MAIL FROM:<>`` (RFC 5321 4.5.5): accepted and recorded as "".

Found by the end-to-end harness: ingest recorded the null path as the string "<>" (so the
signer gave DSNs a VERP return path that could bounce back) and refused it from
authenticated users with 550 5.7.1.
"""

from __future__ import annotations

import aiosmtplib
import pytest

from shared.wire.records import EventKind
from shared.wire.topics import SUBMITTED
from tests.services.ingest.conftest import StartIngest
from tests.services.ingest.sessions import MESSAGE, logged_in, rejection, relay_session


async def test_null_sender_from_trusted_network_is_recorded_as_empty(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"])
    raw = await relay_session(ingest)
    assert await raw.cmd("MAIL FROM:<>") == (250, "2.1.0 Sender ok")
    assert (await raw.cmd("MAIL FROM:<>"))[0] == 503  # still one transaction at a time
    assert (await raw.cmd("RCPT TO:<bob@dest.test>"))[0] == 250
    assert (await raw.cmd("DATA"))[0] == 354
    code, text = await raw.cmd(MESSAGE + b".")
    assert code == 250 and "queued as" in text
    await raw.close()
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.mail_from == ""
    [accepted] = await ingest.events(1)
    assert accepted.kind is EventKind.ACCEPTED and accepted.sender == ""


async def test_null_sender_from_authenticated_user(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = await logged_in(ingest)
    errors = await client.sendmail("", ["bob@dest.test"], MESSAGE)
    assert errors[0] == {}
    await client.quit()
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.mail_from == "" and sub.client.auth_user == "alice"


async def test_null_sender_still_checks_the_from_header(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = await logged_in(ingest)
    forged = MESSAGE.replace(b"From: alice@example.com", b"From: <ceo@bank.test>")
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail("", ["bob@dest.test"], forged)
    assert info.value.code == 550
    await rejection(ingest, "from_domain")
