"""List-Unsubscribe (RFC 2369) and one-click List-Unsubscribe-Post (RFC 8058) for bulk mail.

Owns the decision whether a message is bulk and the two header fields. Each carries an HMAC
token (``shared.wire.tokens.unsubscribe_token``) naming the recipient, the scope (the sender
domain) and the message, so one copy is made per recipient. The bouncer owns the endpoints
that receive them. This module does not sign: the fields are added before signing, and
``dkim.py`` signs both (RFC 8058 section 4: they MUST be covered by a valid DKIM signature).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.signer.config import TRUTHY, BulkRule, SignerConfig
from services.signer.headers import has_field
from shared.wire.records import Submission
from shared.wire.tokens import unsubscribe_token

#: RFC 8058 section 3.1: the exact value a one-click POST carries.
ONE_CLICK = "List-Unsubscribe=One-Click"
BULK_TAG = "bulk"


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


def is_bulk(submission: Submission, sender_domain: str, rules: tuple[BulkRule, ...]) -> bool:
    """Whether the message is bulk: an ``X-Postline-Bulk: yes`` tag or a matching rule."""
    tag = _tag(submission.tags, BULK_TAG)
    if tag is not None and tag.strip().lower() in TRUTHY:
        return True
    return any(_matches(rule, submission, sender_domain) for rule in rules)


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
