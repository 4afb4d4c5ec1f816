"""The outside world's side of a harness cluster: a submitting app, a remote MTA, a mail reader.

- :func:`submit`: an application sending over the submission port with STARTTLS (verifying
  the test CA) and AUTH, or a trusted server over the relay port; returns ingest's queue id;
- :func:`rcpt_reply`: one RCPT probe, then RSET (to see what ingest answers a recipient);
- :func:`send_raw`: a remote MTA delivering a report to the bouncer's intake;
- :func:`verify_dkim`: every DKIM-Signature of a received copy checked by dkimpy against the
  keys the harness DNS server publishes;
- :func:`one_click`: the RFC 8058 POST a mailbox provider makes.

Blocking stdlib clients on purpose: the cluster's own servers run on another thread, so a
test needs no event loop of its own.
"""

from __future__ import annotations

import re
import smtplib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from urllib.parse import urlsplit, urlunsplit

import dkim
import dns.message
import dns.query
import dns.rdatatype

from testing.harness.cluster import Cluster

_QUEUED = re.compile(rb"queued as ([0-9a-f]{32})")


@dataclass(frozen=True)
class Sent:
    """What ingest answered to a message."""

    code: int
    reply: bytes
    message_id: str  # ingest's queue id ("" when the message was not accepted)
    refused: dict[str, tuple[int, bytes]]  # recipients refused at RCPT


def message(
    sender: str, rcpts: Sequence[str], subject: str, body: str, extra: Sequence[str] = ()
) -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    lines = [f"From: App <{sender}>", f"To: {', '.join(rcpts)}", f"Subject: {subject}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def submit(
    cluster: Cluster,
    mail_from: str,
    rcpts: Sequence[str],
    data: bytes,
    *,
    relay: bool = False,
    mail_options: Sequence[str] = (),
    rcpt_options: Mapping[str, Sequence[str]] | None = None,
) -> Sent:
    """Send one message through ingest; never raises for a refused recipient.
    ``mail_options`` and ``rcpt_options`` (per recipient) are ESMTP parameters
    (``RET=HDRS``, ``NOTIFY=SUCCESS``)."""
    m = cluster.materials
    port = cluster.ports.relay if relay else cluster.ports.submission
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("app.harness.test")
        if not relay:
            client.starttls(context=m.pki.client_context())
            client.ehlo("app.harness.test")
            client.login(m.user, m.password)
        code, reply = client.mail(mail_from, list(mail_options))
        if code != 250:
            return Sent(code, reply, "", {})
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in rcpts:
            rcode, rreply = client.rcpt(rcpt, list((rcpt_options or {}).get(rcpt, ())))
            if rcode not in (250, 251):
                refused[rcpt] = (rcode, rreply)
        if len(refused) == len(rcpts):
            client.rset()
            return Sent(0, b"", "", refused)
        code, reply = client.data(data)
        found = _QUEUED.search(reply)
        return Sent(code, reply, found.group(1).decode() if found else "", refused)


def rcpt_reply(cluster: Cluster, mail_from: str, rcpt: str) -> tuple[int, bytes]:
    """What ingest's submission port answers to RCPT TO:<rcpt> (the transaction is reset)."""
    m = cluster.materials
    with smtplib.SMTP("127.0.0.1", cluster.ports.submission, timeout=30) as client:
        client.ehlo("app.harness.test")
        client.starttls(context=m.pki.client_context())
        client.ehlo("app.harness.test")
        client.login(m.user, m.password)
        client.mail(mail_from)
        reply = client.rcpt(rcpt)
        client.rset()
        return reply


def send_raw(port: int, mail_from: str, rcpt: str, data: bytes) -> tuple[int, bytes]:
    """A remote MTA's plain SMTP transaction to ``127.0.0.1:port``; the DATA reply."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mta.remote.test")
        client.mail(mail_from)
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply
        return client.data(data)


def header(data: bytes, name: str) -> str | None:
    """One header field of a raw message, unfolded (``None`` when absent)."""
    value = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(data).get(name)
    return None if value is None else " ".join(str(value).split())


def body_of(data: bytes) -> bytes:
    """The body: everything after the first empty line."""
    return data.partition(b"\r\n\r\n")[2]


def dkim_algorithms(data: bytes) -> list[str]:
    """The ``a=`` tag of every DKIM-Signature, in order."""
    fields = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(data).get_all("DKIM-Signature")
    return [m.group(1) for f in fields or [] if (m := re.search(r"\ba=([\w-]+)", str(f)))]


def verify_dkim(data: bytes, dns_port: int) -> list[bool]:
    """Verify each DKIM-Signature (by index) against the harness DNS server's TXT records."""

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        query = dns.message.make_query(name.decode().rstrip("."), dns.rdatatype.TXT)
        response = dns.query.tcp(query, "127.0.0.1", port=dns_port, timeout=timeout)
        for rrset in response.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return b""

    verifier = dkim.DKIM(data)
    return [
        bool(verifier.verify(idx=i, dnsfunc=dnsfunc)) for i in range(len(dkim_algorithms(data)))
    ]


def unsubscribe_url(data: bytes) -> str:
    """The https URL of a received copy's List-Unsubscribe field."""
    value = header(data, "List-Unsubscribe") or ""
    found = re.search(r"<(https://[^>]+)>", value)
    if found is None:
        raise AssertionError(f"no https List-Unsubscribe URL in {value!r}")
    return found.group(1)


def one_click(url: str) -> int:
    """RFC 8058 3.2: POST ``List-Unsubscribe=One-Click`` to the URL; the HTTP status.

    The harness's bouncer speaks plain HTTP (production puts TLS in front), so the https URL
    is posted to the same host, port and path over http.
    """
    parts = urlsplit(url)
    plain = urlunsplit(("http", *parts[1:]))
    request = urllib.request.Request(
        plain,
        data=b"List-Unsubscribe=One-Click",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


@dataclass(frozen=True)
class HttpAnswer:
    """What one GET returned (redirects are not followed)."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(
    url: str, *, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
) -> HttpAnswer:
    """GET ``url`` as a mail reader's browser would, without following a redirect."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        with opener.open(request, timeout=10) as response:
            return HttpAnswer(
                int(response.status),
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as answer:
        return HttpAnswer(
            answer.code, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
        )
