"""Mailing-list notices: "your message awaits moderator approval", "not a member".

Owns recognising the answers a list manager (Mailman, Sympa, LISTSERV, Majordomo, Google
Groups-style hosted lists) sends when a post to the list is held or refused because the
sender is not subscribed. Nothing failed at the recipient: the list exists and refused or
held our post for its own policy, so such a notice must never suppress the list's address.
It is recorded like an auto-reply (``auto_reply``, parser ``list:held`` or
``list:non-member``). It does not parse bounces (``textbounce.py``) or vacation replies
(``autoreply.py``).
"""

from __future__ import annotations

import re
from email.message import Message

from services.bouncer.report import RecipientStatus, Report, ReportKind, body_text, clean_address

# A list manager's own addresses (RFC 2369 List-* headers name the list itself).
_LIST_SENDER = re.compile(
    r"(^|[<\s])(owner-[^@\s]+|[^@\s<]+-(owner|bounces?|request|admin|approval)|"
    r"sympa|listserv|majordomo|mailman|listmaster|ecartis|lyris)@",
    re.I,
)
_HELD = re.compile(
    r"awaits? (the )?moderator(?:'s)? approval|held (for|until|pending) (the )?(list )?"
    r"(moderator|approval|review)|is being held until|requires? (moderator )?approval|"
    r"pending moderation|has been held for moderation|waiting for moderator approval",
    re.I,
)
_NON_MEMBER = re.compile(
    r"post by non-?member|non-?member (submission|post)|not a member of|"
    r"you are not (a member|subscribed|allowed to post)|only (list )?members (can|may) post|"
    r"members-only list|not (an? )?(authori[sz]ed|subscribed) (sender|member|to post)|"
    r"must (be|first) (a member|subscribe)|is restricted to (list )?(members|subscribers)",
    re.I,
)
# Only the notice's own words: a list manager quotes the held post below these.
_WORDS = 4000


def parse_list_notice(msg: Message) -> Report | None:
    """A list manager's "held for moderation" or "not a member" notice, else ``None``."""
    if not _from_list_manager(msg):
        return None
    words = str(msg.get("Subject", "")) + "\n" + body_text(msg)[:_WORDS]
    if _HELD.search(words):
        reason = "held"
    elif _NON_MEMBER.search(words):
        reason = "non-member"
    else:
        return None
    sender = clean_address(str(msg.get("From", "")))
    recipients = (RecipientStatus(recipient=sender, action="auto-replied"),) if sender else ()
    return Report(kind=ReportKind.AUTO_REPLY, recipients=recipients, parser=f"list:{reason}")


def _from_list_manager(msg: Message) -> bool:
    # The author, not List-Id or Sender: a list adds those to every bounce it passes on
    # (a remote postmaster's "not delivered: Your message ... awaits moderator approval"
    # through a list's -bounces address is a real bounce about someone else).
    return bool(_LIST_SENDER.search(str(msg.get("From", ""))))
