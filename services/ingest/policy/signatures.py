"""The DATA check for messages that arrive DKIM-signed and that ingest would change so that
their signature breaks (``[ingest.content] signed_changes``).

Ingest changes a message in a few ways (``accept.finish``, ``smuggling.normalise``): with
``smuggling = "normalise"`` it rewrites bare CR and LF to CRLF, which changes the body hash
and any signed header holding one (RFC 6376 3.4); it removes every ``X-Postline-*`` control
header, which breaks a signature whose ``h=`` names one; it adds Message-ID and Date where
missing, which breaks a signature whose ``h=`` names the absent field (RFC 6376 5.4: a name
listed with no such field signs its absence); and it prepends a Received field, which a
verifier picks up only when ``h=`` names more Received fields than there are (RFC 6376
5.4.2: instances are taken from the bottom). With ``signed_changes = "refuse"`` such a
message gets ``550 5.6.0`` saying which change (check ``signed_changes``) instead of being
sent with a signature that fails at every recipient. A signature is not verified here: one
that was broken before it arrived is not ingest's business.
"""

from __future__ import annotations

import collections

from services.ingest import replies, smuggling
from services.ingest.headers import CONTROL_PREFIX, Message
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction

#: Fields ingest adds when the message has none (RFC 6409 8.2, 8.3).
_ADDED_WHEN_MISSING = ("message-id", "date")


def signed_changes(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """A DKIM-signed message whose signature ingest's changes would break, unless the
    tenant's or the global ``signed_changes`` is ``allow``."""
    signatures = msg.get("dkim-signature")
    if not signatures:
        return None
    mode = state.tenant(txn.tenant).settings.content.signed_changes
    if (mode or state.config.content.signed_changes) == "allow":
        return None
    normalise = state.config.smuggling == "normalise"
    why = breaking_change(data, msg, signatures, normalise=normalise)
    return Decision(replies.signature_would_break(why), "signed_changes") if why else None


def breaking_change(data: bytes, msg: Message, signatures: list[str], *, normalise: bool) -> str:
    """What ingest would change that breaks one of ``signatures`` (the DKIM-Signature
    values of ``msg``), as the reply says it; "" when nothing would."""
    if normalise and smuggling.has_bare_cr_or_lf(data):
        return "has bare CR or LF that ingest would rewrite to CRLF"
    present = collections.Counter(f.name for f in msg.fields)
    for value in signatures:
        signed = collections.Counter(signed_fields(value))
        removed = sorted(n for n in signed if n.startswith(CONTROL_PREFIX) and present[n])
        if removed:
            return f"signs the {removed[0]} header, which ingest removes"
        for name in _ADDED_WHEN_MISSING:
            if signed[name] and not present[name]:
                return f"signs the absence of a {name} header, which ingest adds"
        if signed["received"] > present["received"]:
            return "signs more Received headers than it has, and ingest adds one"
    return ""


def signed_fields(value: str) -> list[str]:
    """The field names a DKIM-Signature's ``h=`` tag lists, lower case, repeats kept
    (RFC 6376 3.5); [] when it has none."""
    for tag in value.split(";"):
        name, eq, listed = tag.partition("=")
        if eq and name.strip() == "h":
            return [n.strip().lower() for n in listed.split(":") if n.strip()]
    return []
