"""SMTP smuggling defence: bare CR and bare LF in the DATA block.

RFC 5321 2.3.8 allows CR and LF in mail only together, as CRLF. Receivers that accept a
bare LF (or ``<LF>.<CR><LF>``) as line or message ends let an attacker hide a second message
inside the first one for a downstream server (SEC Consult, "SMTP Smuggling", 2023). aiosmtpd
ends DATA only on ``<CRLF>.<CRLF>``, so the message never ends early here; this module finds
what remains in the body and, where configured, normalises it to CRLF so nothing downstream
can be fooled either. It does not read the DATA stream or decide the reply.
"""

from __future__ import annotations

import re

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def has_bare_cr_or_lf(data: bytes) -> bool:
    """Whether ``data`` holds a CR not followed by LF or an LF not preceded by CR."""
    # Three C-speed counts beat a regex scan by an order of magnitude on typical mail.
    pairs = data.count(b"\r\n")
    return data.count(b"\r") != pairs or data.count(b"\n") != pairs


def normalise(data: bytes) -> bytes:
    """``data`` with every bare CR and bare LF replaced by CRLF (CRLF pairs untouched)."""
    return _BARE.sub(b"\r\n", data)
