"""Per-message TLS requirements at ingest, over real SMTP: REQUIRETLS (RFC 8689) offered
and accepted only over TLS, the ``X-Postline-Require-TLS`` control field, the tenant's
``require_tls`` setting and ``TLS-Required: No``, each ending up in the Submission."""

from __future__ import annotations

import aiosmtplib

from services.ingest import accept, headers
from services.ingest.server import take_requiretls
from shared import tenant_admin
from shared.wire.records import EventKind, Submission
from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import PASSWORD, Running, StartIngest
from tests.services.ingest.sessions import relay_session
from tests.services.ingest.test_tenants import BY, TENANT, change, until, with_domain

TRUSTED = ["127.0.0.1/32"]  # the relay listener's clients send without AUTH


def message(*fields: str) -> bytes:
    head = "".join(f"{f}\r\n" for f in fields)
    return (
        f"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: hi\r\n{head}\r\nHello.\r\n"
    ).encode()


async def send_raw(raw: Raw, sender: str, data: bytes, mail_params: str = "") -> None:
    """One transaction on an open session, every reply checked."""
    assert (await raw.cmd(f"MAIL FROM:<{sender}> {mail_params}".rstrip()))[0] == 250
    assert (await raw.cmd("RCPT TO:<bob@dest.test>"))[0] == 250
    assert (await raw.cmd("DATA"))[0] == 354
    code, text = await raw.cmd(data + b".")
    assert code == 250, text


async def one_submission(ingest: Running) -> Submission:
    [sub] = await ingest.records(SUBMITTED, 1)
    assert isinstance(sub, Submission)
    return sub


async def test_requiretls_is_offered_only_after_starttls(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    raw = await Raw.open(ingest.port("submission"))
    assert (await raw.reply())[0] == 220
    code, text = await raw.cmd("EHLO client.test")
    assert code == 250 and "STARTTLS" in text.splitlines()
    assert "REQUIRETLS" not in text.splitlines()
    await raw.starttls(ingest.pki.client_context())
    code, text = await raw.cmd("EHLO client.test")
    assert code == 250 and "REQUIRETLS" in text.splitlines()
    await raw.close()


async def test_requiretls_in_cleartext_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=TRUSTED)
    raw = await relay_session(ingest)
    code, text = await raw.cmd("MAIL FROM:<alice@example.com> REQUIRETLS")
    assert (code, text) == (530, "5.7.10 REQUIRETLS needs TLS")
    # The refusal started no transaction; the same sender without the demand goes.
    await send_raw(raw, "alice@example.com", message())
    await raw.close()
    events = await ingest.events(2)
    # Events are keyed by message: two partitions, no order between these two.
    assert sorted((e.kind, e.check) for e in events) == [
        (EventKind.ACCEPTED, ""),
        (EventKind.REJECTED, "requiretls"),
    ]
    assert (await one_submission(ingest)).require_tls is False


async def test_requiretls_over_starttls_is_carried(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=ingest.port("submission"),
        start_tls=False,
        tls_context=ingest.pki.client_context(),
    )
    await client.connect()
    await client.ehlo()
    await client.starttls(tls_context=ingest.pki.client_context(), server_hostname="localhost")
    await client.ehlo()
    assert client.supports_extension("requiretls")
    await client.login("alice", PASSWORD)
    # RFC 8689 4.1: with REQUIRETLS the TLS-Required field is ignored (but kept).
    data = message("TLS-Required: No")
    await client.sendmail(
        "alice@example.com", ["bob@dest.test"], data, mail_options=["REQUIRETLS", "SIZE=100"]
    )
    await client.quit()
    sub = await one_submission(ingest)
    assert (sub.requiretls, sub.require_tls, sub.tls_optional) == (True, True, False)
    assert b"\r\nTLS-Required: No\r\n" in sub.data


async def test_requiretls_takes_no_value(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=TRUSTED)
    raw = await relay_session(ingest)
    code, _ = await raw.cmd("MAIL FROM:<alice@example.com> REQUIRETLS=YES")
    assert code == 555  # aiosmtpd's "parameters not recognized"
    await raw.close()


def test_only_the_parameter_after_the_path_counts() -> None:
    assert take_requiretls("FROM:<a@b.test> SIZE=9 requiretls") == (True, "FROM:<a@b.test> SIZE=9")
    assert take_requiretls('FROM:<"REQUIRETLS x"@b.test>') == (
        False,
        'FROM:<"REQUIRETLS x"@b.test>',
    )
    assert take_requiretls("FROM:<a@b.test> ENVID=x>y REQUIRETLS") == (
        True,
        "FROM:<a@b.test> ENVID=x>y",
    )
    assert take_requiretls("FROM:<a@b.test> REQUIRETLS=1")[0] is False
    assert take_requiretls("FROM:<bad path REQUIRETLS")[0] is False


async def test_require_tls_control_field_is_taken_out_and_carried(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest(trusted_networks=TRUSTED)
    raw = await relay_session(ingest)
    await send_raw(raw, "alice@example.com", message("X-Postline-Require-TLS: Yes"))
    await raw.close()
    sub = await one_submission(ingest)
    assert (sub.requiretls, sub.require_tls, sub.tls_optional) == (False, True, False)
    assert b"x-postline-require-tls" not in sub.data.lower()
    assert sub.tags == {"require-tls": "Yes"}


async def test_tls_required_no_is_carried(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=TRUSTED)
    raw = await relay_session(ingest)
    await send_raw(raw, "alice@example.com", message("TLS-Required: no"))
    await raw.close()
    sub = await one_submission(ingest)
    assert (sub.requiretls, sub.require_tls, sub.tls_optional) == (False, False, True)
    assert b"\r\nTLS-Required: no\r\n" in sub.data  # RFC 8689 5: it travels on


async def test_the_tenants_setting_applies_unless_the_message_says(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest(trusted_networks=TRUSTED)
    await tenant_admin.add(ingest.bus, TENANT, name="Acme", by=BY)
    await change(ingest, with_domain(verified=True))
    after = await tenant_admin.set_fields(ingest.bus, TENANT, settings={"require_tls": "on"}, by=BY)
    policy = ingest.stage.core.policy
    await until(
        lambda: policy.tenant(TENANT).revision == after.revision, "ingest missed the setting"
    )
    # Without AUTH, a trusted relay's mail from a verified domain is that tenant's.
    raw = await relay_session(ingest)
    await send_raw(raw, "app@acme.test", message())
    await send_raw(raw, "news@acme.test", message("X-Postline-Require-TLS: no"))
    await raw.close()
    # Two partitions: the records' order is not the sending order.
    subs = {s.mail_from: s for s in await ingest.records(SUBMITTED, 2)}
    assert (subs["app@acme.test"].tenant, subs["app@acme.test"].require_tls) == (TENANT, True)
    assert (subs["news@acme.test"].tenant, subs["news@acme.test"].require_tls) == (TENANT, False)


def test_the_control_field_counts_even_past_max_tags() -> None:
    msg = headers.parse(
        b"X-Postline-Campaign: spring\r\nX-Postline-Require-TLS: no\r\n"
        b"X-Postline-Require-TLS: yes\r\nSubject: hi\r\n\r\nHello.\r\n"
    )
    trace = headers.Trace(helo="c.test", ip="127.0.0.1", hostname="mx.test", message_id="m", at=0)
    finished = accept.finish(msg, trace, max_tags=1)
    # The tag table is full after the campaign, yet the requirement is read; the stricter wins.
    assert finished.tags == {"campaign": "spring"} and finished.require_tls is True
    assert b"X-Postline-Require-TLS" not in finished.data
    unknown = headers.parse(b"X-Postline-Require-TLS: maybe\r\n\r\nHello.\r\n")
    assert accept.finish(unknown, trace, max_tags=5).require_tls is None
    api = accept.finish(headers.parse(b"\r\nHi.\r\n"), trace, 5, tags={"require-tls": "no"})
    assert api.require_tls is False
