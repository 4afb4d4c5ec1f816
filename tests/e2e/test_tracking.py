"""Open and click tracking end to end: an HTML message submitted with ``X-Postline-Track``
reaches the sink MX hosts with its links and pixel rewritten per recipient, tokens that
parse back to the original URLs, and DKIM signatures that verify; without the field the same
message arrives byte-identical. Following a link and loading the pixel at the bouncer (the
tracking host is a CNAME to it; here its plain HTTP port) redirect to the original URL and
answer the pixel, with ``clicked`` and ``opened`` events; a forged token is a 404. On Kafka
(stage processes) and on the embedded bus (``postline run``), with ``[signer.tracking]
host`` set and tracking off by default.
"""

from __future__ import annotations

import email
import re
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from shared.wire.records import EventKind
from shared.wire.tokens import parse_tracking_token
from testing.harness import client
from testing.harness.cluster import Cluster, ClusterOptions
from testing.smtpsink import Received

SENDER = "app@sender.test"
HOST = "t.harness.test"
TRACKED = re.compile(r"https://t\.harness\.test/([co])/([A-Za-z0-9_-]+)")
OFFER = "https://shop.sender.test/offer?id=7&src=mail"
GUIDE = "https://shop.sender.test/guide"
#: multipart/alternative: a text part and a quoted-printable UTF-8 HTML part.
BODY = (
    "--=_alt\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    f"Our offer: {OFFER}\n"
    "--=_alt\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    '<html><body><p>Caf=C3=A9 cr=C3=A8me: <a href=3D"https://shop.sender.test/offer?id=3D7&amp;=\n'
    'src=3Dmail">the offer</a>, <a href=3D"https://shop.sender.test/guide">the guide</a>,=\n'
    ' <a href=3D"mailto:help@sender.test">help</a>.</p></body></html>\n'
    "--=_alt--\n"
)
MIME = ["MIME-Version: 1.0", 'Content-Type: multipart/alternative; boundary="=_alt"']


@pytest.fixture(scope="module", params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A cluster whose signer tracks at ``t.harness.test`` when a message asks."""
    bus = request.param
    options = ClusterOptions(
        bus=bus,
        shape="split" if bus == "kafka" else "run",
        workdir=tmp_path_factory.mktemp(f"tracking-{bus}"),
        kafka_bootstrap=request.getfixturevalue("kafka_bootstrap") if bus == "kafka" else "",
        extra_config={"tracking": f'[signer.tracking]\nhost = "{HOST}"\n'},
    )
    running = Cluster(options)
    with running:
        yield running
    assert running.exit_codes == dict.fromkeys(running.exit_codes, 0), running.exit_codes


def send(cluster: Cluster, rcpts: list[str], subject: str, *extra: str) -> str:
    data = client.message(SENDER, rcpts, subject, BODY, [*MIME, *extra])
    sent = client.submit(cluster, SENDER, rcpts, data)
    assert sent.code == 250 and sent.message_id, sent
    return sent.message_id


def received(cluster: Cluster, rcpt: str) -> Received:
    cluster.events.wait_for(EventKind.DELIVERED, recipient=rcpt, timeout=60)
    sink = cluster.sink(rcpt.rpartition("@")[2])
    [copy] = [m for m in sink.messages if rcpt in m.rcpt_tos]
    return copy


def parts(data: bytes) -> tuple[EmailMessage, EmailMessage]:
    parsed = email.message_from_bytes(data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    text, html = (p for p in parsed.walk() if not p.is_multipart())
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text, html


def test_a_tracked_html_message_arrives_rewritten_and_validly_signed(cluster: Cluster) -> None:
    rcpts = ["reader@alpha.test", "reader@beta.test"]
    message_id = send(cluster, rcpts, "Tracked offer", "X-Postline-Track: opens,clicks")
    secret = cluster.materials.secret
    for rcpt in rcpts:
        copy = received(cluster, rcpt)
        assert client.header(copy.data, "X-Postline-Track") is None
        assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]
        text, html = parts(copy.data)
        assert text.get_content() == f"Our offer: {OFFER}"  # text parts only when asked
        assert html["Content-Transfer-Encoding"] == "quoted-printable"
        content = html.get_content()
        assert content.startswith(
            '<html><body><p>Caf\u00e9 cr\u00e8me: <a href="https://t.harness.test/c/'
        )
        assert '<a href="mailto:help@sender.test">help</a>' in content
        found = [
            (kind, parse_tracking_token(secret, token)) for kind, token in TRACKED.findall(content)
        ]
        assert [(kind, t.link, t.url) for kind, t in found] == [
            ("c", 1, OFFER),
            ("c", 2, GUIDE),
            ("o", 0, ""),
        ]
        assert {(t.message_id, t.recipient) for _, t in found} == {(message_id, rcpt)}
        assert content.index("/o/") < content.index("</body>")
    assert cluster.events.counts(message_id) == Counter(accepted=1, signed=1, delivered=2)
    [signed] = cluster.events.events(message_id, None, [EventKind.SIGNED])
    assert "; tracked opens,clicks (2 links)" in signed.detail


def test_without_the_field_the_message_arrives_byte_identical(cluster: Cluster) -> None:
    rcpt = "plain@alpha.test"
    message_id = send(cluster, [rcpt], "Untracked offer")
    copy = received(cluster, rcpt)
    assert client.body_of(copy.data) == BODY.replace("\n", "\r\n").encode()
    assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]
    [signed] = cluster.events.events(message_id, None, [EventKind.SIGNED])
    assert "track" not in signed.detail


def test_following_the_link_and_the_pixel_makes_clicked_and_opened_events(
    cluster: Cluster,
) -> None:
    rcpt = "clicker@alpha.test"
    message_id = send(cluster, [rcpt], "Tracked guide", "X-Postline-Track: opens,clicks")
    _, html = parts(received(cluster, rcpt).data)
    secret = cluster.materials.secret
    links = {  # link number (0: the pixel) -> its token
        parse_tracking_token(secret, token).link: token
        for _, token in TRACKED.findall(html.get_content())
    }
    bouncer = cluster.bouncer_http

    click = client.get(cluster.http_url(bouncer, f"/c/{links[2]}"))
    assert (click.status, click.headers["location"]) == (302, GUIDE)
    pixel = client.get(cluster.http_url(bouncer, f"/o/{links[0]}"))
    assert pixel.status == 200 and pixel.headers["content-type"] == "image/gif"
    assert pixel.body.startswith(b"GIF89a")
    # The offer's token with its URL's last bytes altered: the HMAC no longer verifies.
    forged = links[1][:-2] + ("AA" if not links[1].endswith("AA") else "BB")
    assert client.get(cluster.http_url(bouncer, f"/c/{forged}")).status == 404

    [clicked] = cluster.events.wait_for(EventKind.CLICKED, message_id=message_id, timeout=60)
    assert (clicked.recipient, clicked.url, clicked.link, clicked.tenant) == (
        rcpt,
        GUIDE,
        2,
        "default",
    )
    assert clicked.agent == "browser" and clicked.stage == "bouncer"
    # Clicked within seconds of sending: what a link-checking scanner does, so flagged.
    assert clicked.machine
    [opened] = cluster.events.wait_for(EventKind.OPENED, message_id=message_id, timeout=60)
    assert (opened.recipient, opened.agent, opened.client_ip) == (rcpt, "browser", "127.0.0.1")
    # Only the real click: the forged one made no event.
    assert cluster.events.counts(message_id)[EventKind.CLICKED] == 1
