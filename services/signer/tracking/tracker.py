"""The pipeline's side of tracking: decide once per message, then rewrite each copy.

:meth:`Tracker.decide` resolves what the message wants (``settings.py``), checks that it can
be done safely and cuts the message (``template.py``); :meth:`Tracker.copy` renders one
recipient's copy with its tokens. Refused (``shared.errors.Untrackable``, in
:attr:`Decision.refused`) when:

- ``no_host`` / ``bad_host``: no tracking host at any level, or a settings record's host is
  not a DNS name;
- ``too_large``: the message is over ``[signer.tracking] max_size``;
- ``dkim_signed``: the sender signed the message already: a changed body breaks its
  signature (ours is added later and is not affected);
- ``signed_content``, ``unparseable``, ``unknown_charset``, ``undecodable``: from ``mime.py``.

Links that stay as they are: ``mailto:`` and every other non-http(s) URL, relative URLs and
anchors, tags marked ``data-postline-notrack`` (``html.py``), URLs under
``signer.unsubscribe_url``, the URLs of the message's own ``List-Unsubscribe`` field (an
unsubscribe must work without a redirect and must not count as a click), and links already
at the tracking host. The decision and the exclusions are per message; only the tokens are
per recipient. Metrics and events are the pipeline's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from services.signer.config import TrackingConfig
from services.signer.headers import field_values, has_field
from services.signer.tracking import settings, template
from services.signer.tracking.html import followed_url
from services.signer.tracking.settings import Wanted
from shared.errors import Untrackable
from shared.tenants import TenantTable
from shared.wire.records import Submission
from shared.wire.tokens import TrackingToken, tracking_token

_ANGLED = re.compile(r"<([^>]*)>")
TRIAL_TOKEN = "A" * 64


@dataclass(frozen=True)
class Decision:
    """What tracking does to one message."""

    wanted: Wanted = field(default_factory=Wanted)
    template: template.Template | None = None  # set when copies are to be rewritten
    refused: Untrackable | None = None  # set when tracking was wanted but cannot be done

    @property
    def tracked(self) -> bool:
        """Whether each recipient gets a rewritten copy."""
        return self.template is not None

    def note(self) -> str:
        """What the ``signed`` event says about tracking ("" when it was not asked for)."""
        if not self.wanted.any:
            return ""
        if self.refused is not None:
            return f"; not tracked ({self.refused.reason})"
        if self.template is None:
            return f"; tracking {self.wanted.describe()}: nothing to rewrite"
        links = self.template.links
        return f"; tracked {self.wanted.describe()} ({links} link{'s' * (links != 1)})"


class Tracker:
    """Open and click tracking for the signer's pipeline (see the module docstring)."""

    def __init__(
        self,
        config: TrackingConfig,
        *,
        secret: bytes,
        tenants: TenantTable,
        unsubscribe_url: str = "",
    ) -> None:
        self.config = config
        self.secret = secret
        self.tenants = tenants
        self.unsubscribe_url = unsubscribe_url

    def wanted(self, submission: Submission, sender_domain: str) -> Wanted:
        """What the message asks to track, and where (``settings.resolve``)."""
        tenant = self.tenants.get(submission.tenant)
        domain = (
            self.tenants.sending_domain(submission.tenant, sender_domain) if sender_domain else None
        )
        return settings.resolve(
            settings.tag_value(submission.tags),
            domain.tracking if domain is not None else None,
            tenant.settings.tracking if tenant is not None else None,
            self.config,
        )

    def decide(self, submission: Submission, sender_domain: str) -> Decision:
        """Whether and how the message is tracked; never raises for the message's sake."""
        wanted = self.wanted(submission, sender_domain)
        if not wanted.any:
            return Decision(wanted)
        try:
            self._check(wanted, submission.data)
            cut = template.cut(
                submission.data,
                opens=wanted.opens,
                clicks=wanted.clicks,
                text_clicks=wanted.text_clicks,
                keep=self._keeper(wanted.host, submission.data),
            )
            if cut.links or cut.pixels:
                # One render now, so no recipient's copy can fail later: copies differ only
                # in their tokens, which are URL-safe ASCII.
                template.render(cut, lambda hole: f"https://{wanted.host}/c/{TRIAL_TOKEN}")
        except Untrackable as refused:
            return Decision(wanted, refused=refused)
        return Decision(wanted, cut if cut.links or cut.pixels else None)

    def _check(self, wanted: Wanted, message: bytes) -> None:
        if not wanted.host:
            raise Untrackable("no_host", "no tracking host: set [signer.tracking] host")
        if not settings.valid_host(wanted.host):
            raise Untrackable("bad_host", f"tracking host {wanted.host!r} is not a host name")
        if len(message) > self.config.max_size:
            raise Untrackable("too_large", f"{len(message)} bytes, over signer.tracking.max_size")
        if has_field(message, "DKIM-Signature"):
            raise Untrackable("dkim_signed", "the sender's DKIM signature would break")

    def _keeper(self, host: str, message: bytes) -> Callable[[str], bool]:
        """Which links stay as they are (see the module docstring)."""
        own = {
            followed_url(url)
            for value in field_values(message, "List-Unsubscribe")
            for url in _ANGLED.findall(value)
        }
        hosts = {host, self.config.host} - {""}
        prefix = self.unsubscribe_url

        def keep(url: str) -> bool:
            if url in own or (prefix and url.startswith(prefix)):
                return True
            authority = url.partition("://")[2]
            return re.split(r"[/?#]", authority, maxsplit=1)[0].lower() in hosts

        return keep

    def copy(self, decision: Decision, submission: Submission, recipient: str, at: int) -> bytes:
        """The recipient's copy: every hole of the template filled with its tracked URL."""
        if decision.template is None:
            return submission.data
        host = decision.wanted.host

        def url(hole: template.Hole) -> str:
            token = tracking_token(
                self.secret,
                TrackingToken(
                    message_id=submission.id,
                    recipient=recipient,
                    tenant=submission.tenant,
                    sent_at=at,
                    link=hole.number,
                    url=hole.url,
                ),
            )
            return f"https://{host}/{'o' if hole.number == 0 else 'c'}/{token}"

        return template.render(decision.template, url)
