"""DKIM signatures (RFC 6376, RFC 8463): dkimpy's message logic, OpenSSL's private-key step.

Stock ``dkim.DKIM.sign`` re-parses the PEM key on every call and does the RSA exponentiation
in pure Python (about 140 signatures/s per core). :class:`DkimSigner` subclasses ``dkim.DKIM``
and keeps everything dkimpy does about the message (parsing, the RFC 6376 5.4 header set,
relaxed canonicalisation, header hashing, folding) by calling its own helpers, and replaces
only the key operation with :meth:`SigningKey.sign_digest` (``cryptography``, i.e. OpenSSL,
key parsed once). No dkimpy module global is touched.

Our choices on top of dkimpy's defaults:

- relaxed/relaxed canonicalisation (survives the header refolding and trailing-whitespace
  changes relays do; RFC 6376 3.4),
- never ``l=`` (RFC 6376 8.2: a body length limit lets anyone append content),
- From signed one extra time ("oversigned", RFC 6376 5.4.2) so a second From cannot be added,
- List-Unsubscribe-Post signed too: RFC 8058 section 4 requires it to be covered,
- one body hash and one header canonicalisation shared by every signature of a message,
  so dual signing (RSA + Ed25519, RFC 8463) costs one extra private-key operation.

Two of dkimpy's steps are redone faster with byte-for-byte the same result (the tests
compare them on generated input): :func:`parse` splits only the header block into lines
(dkimpy's ``rfc822_parse`` splits and re-joins the whole body, 14% of the signer's CPU on
50 KB messages), and :func:`relaxed_body` strips trailing whitespace line by line and
compresses whitespace runs only where there are any (the regular expressions it used
before tried a match at every space of the body: 41% of the signer's CPU at 50 KB).

It does not choose keys (``keys.py``) nor decide whether to sign (``pipeline.py``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import dkim
from dkim.canonicalization import (
    CanonicalizationPolicy,
    correct_empty_body,
    strip_trailing_lines,
)

from services.signer.keys import SigningKey
from shared.errors import SigningError

_HEADER = b"DKIM-Signature"
# Only the runs that change: dkimpy's [\t ]+ also "replaces" every lone space by itself,
# which was a tenth of the signer's CPU on 5 KB messages (py-spy, bench-compare).
_WSP_TO_COMPRESS = re.compile(rb"[\t ]{2,}|\t")
#: The empty line that ends the header block (dkimpy accepts LF as well as CRLF line ends).
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_CANON = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
#: Placeholder for b= while the header is folded, as dkimpy does: it forces b= onto its own
#: line so inserting the real value does not move the other tags.
_B_PLACEHOLDER = b"0" * 60


@dataclass(frozen=True)
class _Common:
    """What every signature of one message shares: computed once per message."""

    include: tuple[bytes, ...]  # h=, lower-cased, From twice
    headers: list[tuple[bytes, bytes]]  # the header fields, relaxed-canonicalised
    body_hash: bytes  # bh=, base64
    timestamp: int  # t=
    expire_after: int  # x= - t=, 0 for no x=


class DkimSigner(dkim.DKIM):  # type: ignore[misc]
    """One message to sign; :meth:`signatures` returns its DKIM-Signature header fields."""

    def __init__(self, message: bytes) -> None:
        try:
            super().__init__(message, linesep=b"\r\n")
        except dkim.DKIMException as exc:
            raise SigningError(f"cannot parse message for DKIM: {exc}") from exc
        # Instance attributes, not dkimpy's class tuples: nothing shared is changed.
        self.should_sign: set[bytes] = {*dkim.DKIM.SHOULD, b"list-unsubscribe-post"}

    def set_message(self, message: bytes | None) -> None:
        """dkimpy's ``set_message`` with :func:`parse` in place of ``rfc822_parse``."""
        super().set_message(None)  # resets what dkimpy keeps per message
        if message:
            self.headers, self.body = parse(message)

    def signatures(
        self, keys: Sequence[SigningKey], timestamp: int, expire_after: int = 0
    ) -> list[bytes]:
        """One ``DKIM-Signature: ...\\r\\n`` field per key, to prepend to the message.

        ``timestamp`` is ``t=``; ``expire_after`` > 0 adds ``x=`` that many seconds later.
        Raises :class:`SigningError` when the message cannot be signed (no From header).
        """
        include = tuple(name.lower() for name in self.default_sign_headers())
        if b"from" not in include:
            # RFC 6376 5.4: From MUST be signed; a message without one is not signable.
            raise SigningError("message has no From header field")
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(self.body)).digest())
        common = _Common(
            include, _CANON.canonicalize_headers(self.headers), body_hash, timestamp, expire_after
        )
        return [self._sign_one(key, common) for key in keys]

    def _sign_one(self, key: SigningKey, common: _Common) -> bytes:
        fields = [
            (b"v", b"1"),
            (b"a", key.a_tag),
            (b"c", _CANON.to_c_value()),
            (b"d", key.domain.encode("idna")),
            (b"s", key.selector.encode("ascii")),
            (b"t", str(common.timestamp).encode()),
        ]
        if common.expire_after > 0:
            fields.append((b"x", str(common.timestamp + common.expire_after).encode()))
        fields += [
            (b"h", b" : ".join(common.include)),
            (b"bh", common.body_hash),
            (b"b", _B_PLACEHOLDER),
        ]
        # The same steps as dkimpy's DomainSigner.gen_header, with our key operation.
        unsigned = dkim.fold(_join(fields), namelen=len(_HEADER), linesep=b"\r\n")
        unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
        hasher = hashlib.sha256()
        dkim.hash_headers(
            hasher, _CANON, common.headers, common.include, (_HEADER, b" " + unsigned), None
        )
        signature = key.sign_digest(hasher.digest())
        fields[-1] = (b"b", base64.b64encode(signature))
        value: bytes = dkim.fold(_join(fields) + b"\r\n", namelen=len(_HEADER), linesep=b"\r\n")
        return _HEADER + b": " + value


def parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """The header fields and the body of ``message``, exactly as dkimpy's ``rfc822_parse``
    gives them (the body's lines joined with CRLF, bare LFs included), without splitting
    the body into lines when it has no bare LF. Raises ``dkim.MessageFormatError`` as
    dkimpy does."""
    blank = _BLANK_LINE.search(message)
    if blank is None or message.startswith((b"\n", b"\r\n")):
        # No body, or no header block: nothing to save.
        headers, body = dkim.rfc822_parse(message)
        return headers, body
    # The header block up to and including the last header line's end: the same lines as
    # in the whole message, then the empty string dkimpy stops at.
    headers, _ = dkim.rfc822_parse(message[: blank.start() + 1])
    body = message[blank.end() :]
    if body.count(b"\n") != body.count(b"\r\n"):
        body = b"\r\n".join(_LINE_END.split(body))  # what dkimpy makes of bare LFs
    return headers, body


def relaxed_body(body: bytes) -> bytes:
    """The relaxed body canonicalisation of RFC 6376 3.4.4, byte for byte dkimpy's result:
    trailing whitespace removed, other whitespace runs made one space, trailing empty lines
    removed."""
    lines = body.split(b"\r\n")
    # Whitespace is trailing only before a CRLF: the text after the last one keeps its own.
    stripped = [line.rstrip(b" \t") for line in lines[:-1]]
    stripped.append(lines[-1])
    canonical = b"\r\n".join(stripped)
    if b"\t" in canonical or b"  " in canonical:  # one look at the body, not one per line
        canonical = b"\r\n".join(
            _compress(line) if b"\t" in line or b"  " in line else line for line in stripped
        )
    return bytes(correct_empty_body(strip_trailing_lines(canonical)))


def _compress(line: bytes) -> bytes:
    """``line`` with each run of spaces and tabs made one space."""
    # The leading run (indentation, as in most HTML) without a regular expression: a
    # pattern tries a match at every space, and the text after it usually has no run.
    text = line.lstrip(b" \t")
    indented = len(text) < len(line)
    if b"\t" in text or b"  " in text:
        text = _WSP_TO_COMPRESS.sub(b" ", text)
    return b" " + text if indented else text


def _join(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"; ".join(name + b"=" + value for name, value in fields)


def sign_message(
    message: bytes, keys: Sequence[SigningKey], timestamp: int, expire_after: int = 0
) -> bytes:
    """The DKIM-Signature fields for ``message`` under ``keys``, concatenated."""
    if not keys:
        return b""
    return b"".join(DkimSigner(message).signatures(keys, timestamp, expire_after))
