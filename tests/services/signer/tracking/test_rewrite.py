"""The rewrite of one message, end to end but without a stage: MIME walked on the bytes,
parts re-encoded in their own transfer encoding and charset, links and pixel per recipient,
tokens that parse back, exclusions and refusals (mime.py, template.py, tracker.py)."""

from __future__ import annotations

import base64
import email
import functools
import random
import re
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from services.signer.config import TrackingConfig
from services.signer.mimebytes import quoted_printable
from services.signer.tracking import mime
from services.signer.tracking.tracker import Decision, Tracker
from shared.errors import ForgedToken, Untrackable
from shared.tenants import TenantTable
from shared.wire.records import (
    ClientInfo,
    SendingDomain,
    Submission,
    Tenant,
    TenantSettings,
    TrackingSettings,
)
from shared.wire.tokens import parse_tracking_token
from shared.wire.topics import TENANTS

SECRET = b"0123456789abcdef-test-secret"
HOST = "t.relay.test"
MSGID = "0123456789abcdef0123456789abcdef"
HEAD = b"From: Shop <news@shop.test>\r\nTo: you@dest.test\r\nSubject: News\r\nMIME-Version: 1.0\r\n"
HTML = (
    "<html><head><style>a{color:red}</style></head><body>\r\n<p>Caf\u00e9 cr\u00e8me: "
    '<a href="https://shop.test/p?id=1&amp;ref=mail">the offer</a>,\r\n'
    '<a href="mailto:help@shop.test">help</a>, <a href="#top">top</a>, '
    '<a href="https://shop.test/unsub/abc">unsubscribe</a>.</p>\r\n</body></html>\r\n'
)
TEXT = "Caf\u00e9 cr\u00e8me: https://shop.test/p?id=1&ref=mail\r\n"
ORIGINAL = ["https://shop.test/p?id=1&ref=mail", "https://shop.test/unsub/abc"]
TRACKED = re.compile(r"https://t\.relay\.test/([co])/([A-Za-z0-9_-]+)")


@functools.cache
def no_tenants() -> TenantTable:
    return TenantTable()  # made once: a table hashes a dummy secret with scrypt when made


def tracker(config: TrackingConfig | None = None, tenants: TenantTable | None = None) -> Tracker:
    return Tracker(
        config or TrackingConfig(host=HOST, opens=True, clicks=True, max_size=10**6),
        secret=SECRET,
        tenants=tenants or no_tenants(),
        unsubscribe_url="https://relay.test/unsubscribe/",
    )


def submission(data: bytes, tags: dict[str, str] | None = None, tenant: str = "") -> Submission:
    return Submission(
        id=MSGID,
        received_at=1.0,
        client=ClientInfo(ip="127.0.0.1"),
        mail_from="news@shop.test",
        rcpt_to=("you@dest.test", "other@dest.test"),
        data=data,
        tags=tags or {},
        tenant=tenant,
    )


def rewrite(
    data: bytes, rcpt: str = "you@dest.test", track: Tracker | None = None, **sub: object
) -> tuple[Decision, bytes]:
    track = track or tracker()
    sent = submission(data, **sub)  # type: ignore[arg-type]
    decision = track.decide(sent, "shop.test")
    return decision, track.copy(decision, sent, rcpt, 1_700_000_000)


def alternative(html_part: bytes, text_part: bytes | None = None) -> bytes:
    text_part = text_part or (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + TEXT.encode()
    )
    return (
        HEAD
        + b'Content-Type: multipart/alternative; boundary="=_b1"\r\n\r\n'
        + b"This is a multi-part message in MIME format.\r\n--=_b1\r\n"
        + text_part
        + b"\r\n--=_b1\r\n"
        + html_part
        + b"\r\n--=_b1--\r\n"
    )


def qp_latin1() -> bytes:
    body = quoted_printable(HTML.encode("iso-8859-1"), b"\r\n")
    return (
        b"Content-Type: text/html; charset=ISO-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
    )


def parts(data: bytes) -> list[EmailMessage]:
    parsed = email.message_from_bytes(data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return [p for p in parsed.walk() if not p.is_multipart()]  # type: ignore[misc]


def tokens(text: str) -> list[tuple[str, int, str, str]]:
    found = []
    for kind, token in TRACKED.findall(text):
        parsed = parse_tracking_token(SECRET, token)
        assert (parsed.message_id, parsed.sent_at) == (MSGID, 1_700_000_000)
        found.append((kind, parsed.link, parsed.url, parsed.recipient))
    return found


def test_quoted_printable_latin1_html_is_rewritten_and_the_rest_stays_byte_identical() -> None:
    original = alternative(qp_latin1())
    decision, copy = rewrite(original)
    assert decision.tracked and decision.template is not None
    assert decision.template.links == 2 and decision.template.pixels == 1
    text, html = parts(copy)
    assert text.get_content() == TEXT  # clicks in text parts only when asked
    assert html.get_content_charset() == "iso-8859-1"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    content = html.get_content()
    assert tokens(content) == [
        ("c", 1, ORIGINAL[0], "you@dest.test"),
        ("c", 2, ORIGINAL[1], "you@dest.test"),
        ("o", 0, "", "you@dest.test"),
    ]
    # Byte for byte the same HTML but for the href values and the pixel before </body>.
    restored = TRACKED.sub("X", content)
    expected = HTML.replace("https://shop.test/p?id=1&amp;ref=mail", "X").replace(
        "https://shop.test/unsub/abc", "X"
    )
    pixel = '<img src="X" width="1" height="1" alt="" style="border:0;width:1px;height:1px" />'
    assert restored == expected.replace("</body>", pixel + "</body>")
    # Everything before the HTML part's body and after it is untouched.
    start = original.index(b"Content-Type: text/html")
    assert copy[:start] == original[:start]
    assert copy.endswith(b"\r\n--=_b1--\r\n")
    assert all(len(line) <= 76 for line in copy[start:].split(b"\r\n"))


def test_each_recipient_gets_its_own_tokens() -> None:
    original = alternative(qp_latin1())
    _, mine = rewrite(original, "you@dest.test")
    _, theirs = rewrite(original, "other@dest.test")
    assert {t[3] for t in tokens(parts(mine)[1].get_content())} == {"you@dest.test"}
    assert {t[3] for t in tokens(parts(theirs)[1].get_content())} == {"other@dest.test"}


def test_base64_utf8_html_keeps_its_encoding_and_charset() -> None:
    body = base64.encodebytes(HTML.encode()).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    html_part = (
        b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + body
    )
    _, copy = rewrite(alternative(html_part))
    html = parts(copy)[1]
    assert html["Content-Transfer-Encoding"] == "base64"
    assert html.get_content_charset() == "utf-8"
    assert "Caf\u00e9 cr\u00e8me" in html.get_content()
    assert [t[:3] for t in tokens(html.get_content())] == [
        ("c", 1, ORIGINAL[0], "you@dest.test")[:3],
        ("c", 2, ORIGINAL[1], "you@dest.test")[:3],
        ("o", 0, "", "you@dest.test")[:3],
    ]
    encoded = copy.split(b"\r\n\r\n")[-1]
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))


def test_nested_alternative_and_related_with_attachments() -> None:
    image = (
        b"Content-Type: image/png\r\nContent-ID: <logo>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    )
    attached_html = (
        b'Content-Type: text/html; name="page.html"\r\nContent-Disposition: attachment; '
        b'filename="page.html"\r\n\r\n<a href="https://shop.test/attached">a</a>'
    )
    forwarded = (
        b"Content-Type: message/rfc822\r\n\r\nFrom: x@y.test\r\nContent-Type: text/html\r\n\r\n"
        b'<a href="https://shop.test/forwarded">f</a>'
    )
    html_part = b"Content-Type: text/html; charset=utf-8\r\n\r\n" + HTML.encode()
    related = (
        b'Content-Type: multipart/related; boundary="rel"\r\n\r\n--rel\r\n'
        + html_part
        + b"\r\n--rel\r\n"
        + image
        + b"--rel--"
    )
    inner = (
        b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n--alt\r\n'
        b"Content-Type: text/plain\r\n\r\nPlain https://shop.test/plain\r\n--alt\r\n"
        + related
        + b"\r\n--alt--\r\n"
    )
    original = (
        HEAD
        + b'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n--mix\r\n'
        + inner
        + b"\r\n--mix\r\n"
        + attached_html
        + b"\r\n--mix\r\n"
        + forwarded
        + b"\r\n--mix--\r\n"
    )
    decision, copy = rewrite(original)
    assert decision.template is not None and decision.template.links == 2
    start = original.index(html_part)
    end = start + len(html_part)
    assert copy[:start] == original[:start]
    assert copy.endswith(original[end:])  # the image, the attachments: unchanged
    assert b"Content-Transfer-Encoding" not in copy[start : -len(original[end:])]  # 8bit, kept
    assert [t[:3] for t in tokens(copy.decode())] == [
        ("c", 1, ORIGINAL[0]),
        ("c", 2, ORIGINAL[1]),
        ("o", 0, ""),
    ]


def test_text_parts_only_when_asked() -> None:
    config = TrackingConfig(host=HOST, clicks=True, text_clicks=True)
    _, copy = rewrite(alternative(qp_latin1()), track=tracker(config))
    text, html = parts(copy)
    assert [t[:3] for t in tokens(text.get_content())] == [("c", 1, ORIGINAL[0])]
    assert [t[:3] for t in tokens(html.get_content())] == [
        ("c", 2, ORIGINAL[0]),
        ("c", 3, ORIGINAL[1]),
    ]  # clicks without opens: no pixel
    assert text["Content-Transfer-Encoding"] == "8bit"


def test_single_part_html_without_body_tag_gets_the_pixel_at_its_end() -> None:
    original = (
        HEAD + b"Content-Type: text/html\r\n\r\n<p>Hi <a href=https://shop.test/a>a</a></p>\r\n"
    )
    _, copy = rewrite(original, tags={"track": "opens"})
    body = copy.partition(b"\r\n\r\n")[2]
    assert body.startswith(
        b'<p>Hi <a href=https://shop.test/a>a</a></p><img src="https://t.relay.test/o/'
    )
    assert body.endswith(b" />\r\n")
    assert copy.startswith(HEAD + b"Content-Type: text/html\r\n\r\n")


def test_a_7bit_part_that_a_long_url_would_overflow_becomes_quoted_printable() -> None:
    url = "https://shop.test/" + "x" * 900
    original = (
        HEAD
        + b"Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        + f'<a href="{url}">x</a> <a href="https://shop.test/b">b</a>\r\n'.encode()
    )
    _, copy = rewrite(original, tags={"track": "clicks"})
    [html] = parts(copy)
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert copy.count(b"Content-Transfer-Encoding") == 1
    assert [t[2] for t in tokens(html.get_content())] == [url, "https://shop.test/b"]
    short = (
        HEAD
        + b"Content-Transfer-Encoding: 7bit\r\nContent-Type: text/html\r\n\r\n<a href='https://shop.test/b'>b</a>\r\n"
    )
    _, copy = rewrite(short, tags={"track": "clicks"})
    assert b"Content-Transfer-Encoding: 7bit\r\n" in copy and b"quoted" not in copy


def test_unsubscribe_links_and_links_at_the_tracking_host_stay() -> None:
    html = (
        '<a href="https://relay.test/unsubscribe/TOKEN">ours</a>'
        '<a href="https://shop.test/leave?u=1&amp;v=2">theirs</a>'
        '<a href="https://T.relay.test/c/old">tracked already</a>'
        '<a href="https://shop.test/track-me">track</a>'
    )
    original = (
        HEAD.replace(
            b"MIME",
            b"List-Unsubscribe: <mailto:u@shop.test>,\r\n <https://shop.test/leave?u=1&v=2>\r\nMIME",
        )
        + b"Content-Type: text/html\r\n\r\n"
        + html.encode()
    )
    _, copy = rewrite(original, tags={"track": "clicks"})
    body = copy.partition(b"\r\n\r\n")[2].decode()
    assert [t[:3] for t in tokens(body)] == [("c", 1, "https://shop.test/track-me")]
    assert body.startswith(html.rpartition("<a ")[0])


def test_nothing_to_track_leaves_the_message_alone() -> None:
    original = HEAD + b"Content-Type: text/plain\r\n\r\nJust text https://shop.test/x\r\n"
    decision, copy = rewrite(original)
    assert not decision.tracked and decision.refused is None and copy == original
    assert decision.note() == "; tracking opens,clicks: nothing to rewrite"


def test_tracking_off_leaves_the_message_alone() -> None:
    original = alternative(qp_latin1())
    decision, copy = rewrite(original, track=tracker(TrackingConfig(host=HOST)))
    assert copy is original or copy == original
    assert not decision.tracked and decision.note() == ""


SIGNED = (
    HEAD + b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
    b'micalg=sha-256; boundary="s"\r\n\r\n--s\r\nContent-Type: text/html\r\n\r\n'
    b'<a href="https://shop.test/">x</a>\r\n--s\r\n'
    b"Content-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n--s--\r\n"
)
UNCLOSED = (
    HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b'Content-Type: text/html\r\n\r\n<a href="https://s.test/">x</a>\r\n'
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (SIGNED, "signed_content"),
        (
            HEAD + b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIIB",
            "signed_content",
        ),
        (UNCLOSED, "unparseable"),
        (HEAD + b"Content-Type: multipart/mixed\r\n\r\nno boundary", "unparseable"),
        (
            HEAD
            + b"Content-Type: text/html; charset=x-unheard-of\r\n\r\n<a href='https://s.test/'>",
            "unknown_charset",
        ),
        (
            HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin",
            "unparseable",
        ),
        (
            HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGE+a",
            "undecodable",
        ),
        (
            b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.test; s=x; b=abc\r\n"
            + HEAD
            + b"Content-Type: text/html\r\n\r\n<a href='https://s.test/'>x</a>",
            "dkim_signed",
        ),
        (HEAD + b"Content-Type: text/html\r\n\r\n" + b"<p>" * 400_000, "too_large"),
    ],
)
def test_messages_that_cannot_be_rewritten_safely_go_untouched(data: bytes, reason: str) -> None:
    decision, copy = rewrite(data)
    assert decision.refused is not None and decision.refused.reason == reason
    assert not decision.tracked and copy == data
    assert decision.note() == f"; not tracked ({reason})"


def tenant_table(*tenants: Tenant) -> TenantTable:
    table = TenantTable()
    for tenant in tenants:
        table.apply(tenant.id.encode(), TENANTS.encode(tenant))
    return table


def test_no_host_or_a_bad_one_goes_untouched() -> None:
    original = alternative(qp_latin1())
    decision, copy = rewrite(original, track=tracker(TrackingConfig(opens=True)))
    assert decision.refused is not None and decision.refused.reason == "no_host"
    assert copy == original
    bad = Tenant(id="shop", settings=TenantSettings(tracking=TrackingSettings(host='x"><b>')))
    decision, copy = rewrite(original, track=tracker(tenants=tenant_table(bad)), tenant="shop")
    assert decision.refused is not None and decision.refused.reason == "bad_host"
    assert copy == original


def test_the_tenant_and_its_domain_decide_and_name_the_host() -> None:
    shop = Tenant(
        id="shop",
        domains=(
            SendingDomain(
                name="shop.test",
                verified=True,
                tracking=TrackingSettings(clicks=False, host="links.shop.test"),
            ),
        ),
        settings=TenantSettings(tracking=TrackingSettings(opens=True, clicks=True)),
    )
    track = tracker(TrackingConfig(host=HOST), tenant_table(shop))
    decision, copy = rewrite(alternative(qp_latin1()), track=track, tenant="shop")
    assert (decision.wanted.opens, decision.wanted.clicks) == (True, False)
    assert decision.wanted.host == "links.shop.test"
    html = parts(copy)[1].get_content()
    [pixel] = re.findall(r"https://links\.shop\.test/o/([A-Za-z0-9_-]+)", html)
    token = parse_tracking_token(SECRET, pixel)
    assert (token.tenant, token.link, token.url) == ("shop", 0, "")
    assert "https://shop.test/p?id=1&amp;ref=mail" in html  # clicks off for the domain
    # Another tenant's mail from the same domain gets neither its settings nor its host.
    decision, _ = rewrite(alternative(qp_latin1()), track=track, tenant="other")
    assert not decision.wanted.any


def test_a_forged_or_altered_token_does_not_parse() -> None:
    _, copy = rewrite(alternative(qp_latin1()))
    [(_, token), *_] = TRACKED.findall(parts(copy)[1].get_content())
    with pytest.raises(ForgedToken):
        parse_tracking_token(b"another-secret-0123456789", token)
    altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    with pytest.raises(ForgedToken):
        parse_tracking_token(SECRET, altered)


def test_mime_refusals_are_untrackable() -> None:
    with pytest.raises(Untrackable):
        mime.text_parts(SIGNED, plain=False)


def test_a_lone_cr_in_quoted_printable_content_stays_encoded() -> None:
    original = (
        HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"<p>odd=0Dline</p><a href=3D'https://shop.test/a'>a</a>\r\n"
    )
    _, copy = rewrite(original, tags={"track": "clicks"})
    body = copy.partition(b"\r\n\r\n")[2]
    assert b"\r" not in body.replace(b"\r\n", b"") and b"\n" not in body.replace(b"\r\n", b"")
    [html] = parts(copy)
    assert html.get_payload(decode=True).startswith(b"<p>odd\rline</p><a href='https://t.relay")


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/html; charset=base64", b"<a href='https://s.test/'>x</a>", "undecodable"),
        ("text/html; charset=idna", b"<a href='https://s.test/'>x</a>", "undecodable"),
    ],
)
def test_charsets_python_cannot_use_become_a_reason_not_an_error(
    content_type: str, body: bytes, reason: str
) -> None:
    original = HEAD + f"Content-Type: {content_type}\r\n\r\n".encode() + body
    decision, copy = rewrite(original)
    assert decision.refused is not None and decision.refused.reason == reason
    assert copy == original


#: Fragments that break MIME and HTML in the ways broken generators and attackers do.
DAMAGE = (
    *(b"<", b">", b"\r\n", b"\n", b"\r", b"--", b"=", b'"', b"'", b"&amp;", b"\x00", b"\xe9"),
    *(b"<a href=", b"</body>", b"=\r\n", b"=3D", b"<!--", b"<![x[", b"boundary="),
    *(b"Content-Type: text/html\r\n", b"Content-Transfer-Encoding: base64\r\n"),
    *(b"charset=utf-16\r\n", b"charset=iso-2022-jp", b"--=_b1--", b"; charset*=utf-8''%E9"),
)


def test_damaged_messages_are_tracked_or_refused_never_an_error() -> None:
    rng = random.Random(15)  # fixed: the same 800 damaged messages on every run
    samples = [alternative(qp_latin1()), SIGNED, UNCLOSED]
    reasons: set[str] = set()
    for _ in range(800):
        damaged = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(damaged) + 1)
            if rng.random() < 0.6:
                damaged[at:at] = rng.choice(DAMAGE)
            else:
                del damaged[at : at + rng.randint(1, 5)]
        decision, copy = rewrite(bytes(damaged))
        if decision.refused is not None:
            reasons.add(decision.refused.reason)
            assert copy == bytes(damaged)
        else:
            reasons.add("tracked" if decision.tracked else "untouched")
    assert {"tracked", "untouched", "unparseable", "signed_content"} <= reasons
