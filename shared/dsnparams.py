"""The SMTP DSN extension's parameters (RFC 3461): their syntax, xtext, and their wire form.

Ingest reads them (``RET`` and ``ENVID`` on MAIL FROM, ``NOTIFY`` and ``ORCPT`` on RCPT TO)
and keeps them decoded in the records (``shared.wire.records.RecipientDsn``, the
``dsn_*`` fields of Submission and Delivery); the deliverer writes them again towards an MX
that offers DSN; the bouncer honours them. This module owns the grammar of RFC 3461 4 and
the xtext encoding (RFC 3461 4), nothing else: no SMTP replies, no decisions.
"""

from __future__ import annotations

import re

from shared.wire.records import RecipientDsn

#: RFC 3461 4.1: NOTIFY is NEVER alone, or a list of these.
NEVER = "NEVER"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
DELAY = "DELAY"
_NOTIFY_WORDS = frozenset({SUCCESS, FAILURE, DELAY})
#: RFC 3461 4.3.
RET_VALUES = frozenset({"FULL", "HDRS"})
#: RFC 3461 4.4: "the ENVID MUST NOT exceed 100 characters"; 4.2: ORCPT not 500.
MAX_ENVID = 100
MAX_ORCPT = 500
#: How much longer the DSN parameters may make a command line (RFC 3461 4: a server must
#: take the longest values): " RET=HDRS ENVID=" and 100, " NOTIFY=SUCCESS,FAILURE,DELAY
#: ORCPT=" and 500.
MAIL_ROOM = len(" RET=HDRS ENVID=") + MAX_ENVID
RCPT_ROOM = len(" NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=") + MAX_ORCPT
#: Which parameters belong to which command (RFC 3461 4.1-4.4).
MAIL_KEYWORDS = frozenset({"RET", "ENVID"})
RCPT_KEYWORDS = frozenset({"NOTIFY", "ORCPT"})

# RFC 3461 4: xtext = *( xchar / hexchar ); xchar is "!".."~" but "+" and "="; hexchar is
# "+" and two upper-case hex digits.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
# RFC 3461 4.2: addr-type is an RFC 5322 atom (``rfc822``, ``utf-8``, ``x400``...).
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
# Decoded ENVID and ORCPT: printable US-ASCII, white space included (RFC 3461 4.2, 4.4).
_PRINTABLE = re.compile(r"[ -~]*")


class DsnParamError(ValueError):
    """A DSN parameter that does not follow RFC 3461 4 (ingest answers ``501 5.5.4``)."""


def xtext_decode(value: str) -> str:
    """The text an xtext stands for; :class:`DsnParamError` when ``value`` is no xtext."""
    if not _XTEXT.fullmatch(value):
        raise DsnParamError("not valid xtext")
    return _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), value)


def xtext_encode(text: str) -> str:
    """``text`` as xtext: "+", "=" and characters outside "!".."~" become ``+XX``."""
    return "".join(
        c if "!" <= c <= "~" and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in text
    )


def split_params(params: str, keywords: frozenset[str]) -> tuple[list[tuple[str, str]], str]:
    """The ``keywords`` parameters of a MAIL or RCPT parameter string, keyword upper-cased
    and value exactly as sent (xtext is case-sensitive), and the other parameters as one
    string. ``NOTIFY`` without ``=value`` gives the value "" (refused by its parser)."""
    found: list[tuple[str, str]] = []
    rest: list[str] = []
    for param in params.split():
        keyword, _, value = param.partition("=")
        if keyword.upper() in keywords:
            found.append((keyword.upper(), value))
        else:
            rest.append(param)
    return found, " ".join(rest)


def _once(found: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, value in found:
        if keyword in values:
            raise DsnParamError(f"{keyword} given twice")  # RFC 5321 4.1.1.11 / RFC 3461 4
        values[keyword] = value
    return values


def parse_ret(value: str) -> str:
    """``RET=FULL|HDRS`` (RFC 3461 4.3), upper-cased."""
    if value.upper() not in RET_VALUES:
        raise DsnParamError("RET must be FULL or HDRS")
    return value.upper()


def parse_envid(value: str) -> str:
    """``ENVID=xtext`` (RFC 3461 4.4), decoded."""
    if not value or len(value) > MAX_ENVID:
        raise DsnParamError(f"ENVID must be 1 to {MAX_ENVID} characters of xtext")
    text = xtext_decode(value)
    if not _PRINTABLE.fullmatch(text):
        raise DsnParamError("ENVID must be printable US-ASCII")
    return text


def parse_notify(value: str) -> tuple[str, ...]:
    """``NOTIFY=NEVER`` or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1),
    upper-cased, in the order given."""
    words = [w.upper() for w in value.split(",")]
    if words == [NEVER]:
        return (NEVER,)
    if not value or any(w not in _NOTIFY_WORDS for w in words) or len(set(words)) != len(words):
        raise DsnParamError("NOTIFY must be NEVER, or SUCCESS, FAILURE and DELAY comma separated")
    return tuple(words)


def parse_orcpt(value: str) -> str:
    """``ORCPT=addr-type;xtext`` (RFC 3461 4.2) as ``addr-type;address`` (decoded)."""
    kind, sep, xtext = value.partition(";")
    if not sep or not _ATOM.fullmatch(kind) or not xtext or len(value) > MAX_ORCPT:
        raise DsnParamError(f"ORCPT must be addr-type;xtext, at most {MAX_ORCPT} characters")
    address = xtext_decode(xtext)
    if not _PRINTABLE.fullmatch(address):
        raise DsnParamError("ORCPT must be printable US-ASCII")
    return f"{kind};{address}"


def mail_params(found: list[tuple[str, str]]) -> tuple[str, str]:
    """``(ret, envid)`` of MAIL FROM's DSN parameters (each "" when not given)."""
    values = _once(found)
    ret = parse_ret(values["RET"]) if "RET" in values else ""
    envid = parse_envid(values["ENVID"]) if "ENVID" in values else ""
    return ret, envid


def rcpt_params(found: list[tuple[str, str]]) -> RecipientDsn | None:
    """RCPT TO's DSN parameters; ``None`` when it had none."""
    values = _once(found)
    if not values:
        return None
    notify = parse_notify(values["NOTIFY"]) if "NOTIFY" in values else ()
    orcpt = parse_orcpt(values["ORCPT"]) if "ORCPT" in values else ""
    return RecipientDsn(notify=notify, orcpt=orcpt)


def wire_mail_params(ret: str, envid: str) -> list[bytes]:
    """MAIL FROM's DSN parameters for an MX that offers DSN (RFC 3461 5.2.1: passed on)."""
    params = [f"RET={ret}".encode()] if ret else []
    if envid:
        params.append(f"ENVID={xtext_encode(envid)}".encode())
    return params


def wire_rcpt_params(dsn: RecipientDsn | None) -> list[bytes]:
    """RCPT TO's DSN parameters for an MX that offers DSN (RFC 3461 5.2.1: passed on)."""
    if dsn is None:
        return []
    params = [f"NOTIFY={','.join(dsn.notify)}".encode()] if dsn.notify else []
    if dsn.orcpt:
        kind, _, address = dsn.orcpt.partition(";")
        params.append(f"ORCPT={kind};{xtext_encode(address)}".encode())
    return params


def notifies(notify: tuple[str, ...], word: str) -> bool:
    """Whether a recipient's NOTIFY asks for ``word``'s DSN; no NOTIFY means FAILURE (and,
    RFC 3461 4.1, DELAY at the MTA's choice: Postline sends none unless asked)."""
    return word in notify if notify else word == FAILURE
