"""List-Unsubscribe (RFC 2369) and one-click List-Unsubscribe-Post (RFC 8058) for bulk mail.

Owns the decision whether a message is bulk (:func:`bulk_reason`: the tenant's settings, an
``X-Postline-Bulk`` tag, a ``signer.bulk_rules`` rule, or the message's own ``Precedence:
bulk|list|junk`` or ``List-Unsubscribe`` field) and the two header fields. Being bulk decides
the lane (``postline.outbound.bulk``), the unsubscribe fields and which suppressions apply.
Each field carries an HMAC token (``shared.wire.tokens.unsubscribe_token``) naming the
recipient, the scope (the sender domain) and the message, so one copy is made per recipient.
The bouncer owns the endpoints that receive them. This module does not sign: the fields are
added before signing, and ``dkim.py`` signs both (RFC 8058 section 4: they MUST be covered by
a valid DKIM signature).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.signer.config import TRUTHY, BulkRule, SignerConfig
from services.signer.headers import field_values, has_field
from shared.wire.records import Submission
from shared.wire.tokens import unsubscribe_token

#: RFC 8058 section 3.1: the exact value a one-click POST carries.
ONE_CLICK = "List-Unsubscribe=One-Click"
BULK_TAG = "bulk"
#: ``Precedence`` values of mass mail (RFC 2076 lists the field; RFC 3834 names these three).
BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})


def _tag(tags: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower().removeprefix("x-postline-")
    for key, value in tags.items():
        if key.lower().removeprefix("x-postline-") == wanted:
            return value
    return None


def _matches(rule: BulkRule, submission: Submission, sender_domain: str) -> bool:
    if rule.user and rule.user != (submission.client.auth_user or ""):
        return False
    if rule.sender_domain and rule.sender_domain.lower() != sender_domain:
        return False
    if rule.tag:
        value = _tag(submission.tags, rule.tag)
        if value is None or (rule.value and value.lower() != rule.value.lower()):
            return False
    return True


def _precedence(message: bytes) -> str:
    """The first word of the first ``Precedence`` field, lower-cased ("" without one)."""
    values = field_values(message, "Precedence")
    words = values[0].split() if values else []
    return words[0].lower() if words else ""


def bulk_reason(
    submission: Submission,
    sender_domain: str,
    rules: tuple[BulkRule, ...],
    *,
    tenant_bulk: bool = False,
) -> str:
    """Why the message is bulk ("" when it is transactional): ``tenant`` (the tenant's
    settings say all its mail is), ``tag`` (``X-Postline-Bulk: yes``), ``rule`` (a
    ``signer.bulk_rules`` match), ``precedence`` or ``list-unsubscribe`` (the sender's own
    fields, below)."""
    if tenant_bulk:
        return "tenant"
    tag = _tag(submission.tags, BULK_TAG)
    if tag is not None and tag.strip().lower() in TRUTHY:
        return "tag"
    if any(_matches(rule, submission, sender_domain) for rule in rules):
        return "rule"
    # "Precedence: bulk", "list" and "junk" mark mass mail (RFC 2076; mailing list software
    # and bulk senders set it, and RFC 3834 responders leave such mail unanswered).
    if _precedence(submission.data) in BULK_PRECEDENCE:
        return "precedence"
    # A sender that offers List-Unsubscribe (RFC 2369) says the mail goes to a list: the
    # large mailbox providers' sender rules treat it as bulk, and so do we.
    if has_field(submission.data, "List-Unsubscribe"):
        return "list-unsubscribe"
    return ""


def is_bulk(
    submission: Submission,
    sender_domain: str,
    rules: tuple[BulkRule, ...],
    *,
    tenant_bulk: bool = False,
) -> bool:
    """Whether the message is bulk (see :func:`bulk_reason`)."""
    return bool(bulk_reason(submission, sender_domain, rules, tenant_bulk=tenant_bulk))


def wants_headers(config: SignerConfig, message: bytes) -> bool:
    """Whether to add our fields: configured, and the sender did not set its own."""
    return bool(config.unsubscribe_url) and not has_field(message, "List-Unsubscribe")


def unsubscribe_fields(
    config: SignerConfig,
    secret: bytes,
    recipient: str,
    scope: str,
    message_id: str,
    *,
    mailto_domain: str = "",
) -> list[tuple[str, str]]:
    """The List-Unsubscribe and List-Unsubscribe-Post fields for one recipient; the mailto is
    at ``mailto_domain`` (default ``config.mailto_domain``: the pipeline passes the message's
    return-path domain unless ``unsubscribe_mailto_domain`` is set)."""
    token = unsubscribe_token(secret, recipient, scope, message_id)
    url = config.unsubscribe_url.rstrip("/") + "/" + token
    mailto = f"mailto:{config.unsubscribe_local}+{token}@{mailto_domain or config.mailto_domain}"
    return [
        # RFC 8058 section 3.1: the HTTPS URI carries the token; RFC 2369 3.2: a mailto too.
        ("List-Unsubscribe", f"<{url}>,\r\n <{mailto}>"),
        ("List-Unsubscribe-Post", ONE_CLICK),
    ]
