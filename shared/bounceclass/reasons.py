"""Why a delivery failed: a fixed set of reasons (after sisimai's taxonomy) and the matcher.

Owns the reason table (each reason's meaning, bounce class, whether it is permanent when
the reply does not say, and the RFC 3463 status it stands for) and :func:`explain`, one pure
function from a failure's status, reply code and text to a reason, a permanence and a status
code that is always present: the reported one, else one derived from the reply code's class
and the reason (a 550 "user unknown" without an enhanced code is 5.1.1). Shared by the
deliverer (synchronous SMTP replies) and the bouncer (DSNs, text bounces), so both name a
failure alike; the class the rule table gives stays ``classify.py``'s. The table is
documented in ``docs/bounce-reasons.md``.

Order: the specific texts, then the specific RFC 3463 codes, then the generic texts, then
the generic codes, then the reply code; the text goes first because remote MTAs misuse
codes far more than words (a spam filter answering 5.1.1, Gmail's 4.2.1 for a rate).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.bounceclass.literals import required_options
from shared.bounceclass.rules import BounceClass

H, S, B = BounceClass.HARD, BounceClass.SOFT, BounceClass.BLOCK


class Reason(enum.StrEnum):
    """Why one recipient failed (a bounded metric label: never add free text here)."""

    USER_UNKNOWN = "userunknown"
    HOST_UNKNOWN = "hostunknown"
    HAS_MOVED = "hasmoved"
    NOT_ACCEPT = "notaccept"
    SUSPEND = "suspend"
    NO_RELAYING = "norelaying"
    MAILBOX_FULL = "mailboxfull"
    MESG_TOO_BIG = "mesgtoobig"
    EXCEED_LIMIT = "exceedlimit"
    SYSTEM_FULL = "systemfull"
    EXPIRED = "expired"
    NETWORK_ERROR = "networkerror"
    SYSTEM_ERROR = "systemerror"
    MAILER_ERROR = "mailererror"
    SYNTAX_ERROR = "syntaxerror"
    RATE_LIMITED = "ratelimited"
    GREYLISTED = "greylisted"
    ON_HOLD = "onhold"
    BLOCKED = "blocked"
    BAD_REPUTATION = "badreputation"
    SPAM_DETECTED = "spamdetected"
    VIRUS_DETECTED = "virusdetected"
    CONTENT_ERROR = "contenterror"
    NOT_COMPLIANT_RFC = "notcompliantrfc"
    POLICY_VIOLATION = "policyviolation"
    AUTH_FAILURE = "authfailure"
    REQUIRE_PTR = "requireptr"
    REJECTED = "rejected"
    SECURITY_ERROR = "securityerror"
    VACATION = "vacation"
    FEEDBACK = "feedback"
    UNDEFINED = "undefined"


@dataclass(frozen=True)
class ReasonInfo:
    """What a reason means and leads to.

    ``permanent`` applies only when neither the report (Action, status class) nor the reply
    code says; ``detail`` is the RFC 3463 "subject.detail" a derived status uses ("" for the
    reports that are not failures: auto-replies and complaints).
    """

    meaning: str
    bounce_class: BounceClass
    permanent: bool
    detail: str


#: The table, in the order ``docs/bounce-reasons.md`` lists it.
REASONS: dict[Reason, ReasonInfo] = {
    Reason.USER_UNKNOWN: ReasonInfo("the mailbox does not exist", H, True, "1.1"),
    Reason.HOST_UNKNOWN: ReasonInfo(
        "the recipient's domain does not exist or has no route", H, True, "1.2"
    ),
    Reason.HAS_MOVED: ReasonInfo("the mailbox moved or changed owner", H, True, "1.6"),
    Reason.NOT_ACCEPT: ReasonInfo("the domain or host accepts no mail (null MX)", H, True, "3.2"),
    Reason.SUSPEND: ReasonInfo("the mailbox exists but is disabled or suspended", H, True, "2.1"),
    Reason.NO_RELAYING: ReasonInfo(
        "the host does not relay for the recipient's domain", H, True, "7.1"
    ),
    Reason.MAILBOX_FULL: ReasonInfo("the mailbox is over its quota", S, False, "2.2"),
    Reason.MESG_TOO_BIG: ReasonInfo("the message is larger than the host accepts", S, True, "3.4"),
    Reason.EXCEED_LIMIT: ReasonInfo(
        "a per-recipient or per-message limit (size, recipients)", S, True, "2.3"
    ),
    Reason.SYSTEM_FULL: ReasonInfo("the receiving system is out of storage", S, False, "3.1"),
    Reason.EXPIRED: ReasonInfo("delivery gave up after retrying for too long", S, False, "4.7"),
    Reason.NETWORK_ERROR: ReasonInfo(
        "no connection, a lost connection, DNS failure or a loop", S, False, "4.1"
    ),
    Reason.SYSTEM_ERROR: ReasonInfo(
        "the receiving system failed or is unavailable", S, False, "3.0"
    ),
    Reason.MAILER_ERROR: ReasonInfo(
        "the local delivery program (procmail, pipe) failed", S, True, "3.0"
    ),
    Reason.SYNTAX_ERROR: ReasonInfo(
        "an SMTP command or its parameters were refused as invalid", S, True, "5.2"
    ),
    Reason.RATE_LIMITED: ReasonInfo(
        "too many connections or messages too fast from us", S, False, "4.5"
    ),
    Reason.GREYLISTED: ReasonInfo(
        "greylisting: a first attempt deferred on purpose", S, False, "2.0"
    ),
    Reason.ON_HOLD: ReasonInfo(
        "held or quarantined by the receiver, outcome not final", S, False, "0.0"
    ),
    Reason.BLOCKED: ReasonInfo("our IP or host is blocked or blocklisted (DNSBL)", B, True, "7.1"),
    Reason.BAD_REPUTATION: ReasonInfo(
        "refused or deferred for our sending reputation", B, False, "7.0"
    ),
    Reason.SPAM_DETECTED: ReasonInfo("the message was judged spam", B, True, "7.1"),
    Reason.VIRUS_DETECTED: ReasonInfo("the message carried a virus or malware", B, True, "7.1"),
    Reason.CONTENT_ERROR: ReasonInfo(
        "the content (MIME, attachment type) was refused", B, True, "6.0"
    ),
    Reason.NOT_COMPLIANT_RFC: ReasonInfo(
        "the message violates RFC 5322 (headers, bare LF)", B, True, "6.0"
    ),
    Reason.POLICY_VIOLATION: ReasonInfo(
        "refused by a local policy of the receiver", B, True, "7.1"
    ),
    Reason.AUTH_FAILURE: ReasonInfo("SPF, DKIM or DMARC failed or was missing", B, True, "7.26"),
    Reason.REQUIRE_PTR: ReasonInfo(
        "our IP has no or a mismatching reverse DNS name", B, True, "7.25"
    ),
    Reason.REJECTED: ReasonInfo("our envelope sender (MAIL FROM) was refused", B, True, "1.8"),
    Reason.SECURITY_ERROR: ReasonInfo(
        "TLS was required or failed (STARTTLS, certificate)", B, False, "7.10"
    ),
    Reason.VACATION: ReasonInfo("an auto-reply, not a failure", BounceClass.AUTO_REPLY, False, ""),
    Reason.FEEDBACK: ReasonInfo(
        "a complaint (feedback report), not a failure", BounceClass.COMPLAINT, False, ""
    ),
    Reason.UNDEFINED: ReasonInfo("nothing recognised", BounceClass.UNKNOWN, False, "0.0"),
}

R = Reason


@dataclass(frozen=True)
class _Alternative:
    """One alternative of a reason's patterns, with the literals one of which any of its
    matches contains (``None``: it has none of 2 characters or more, always searched)."""

    pattern: re.Pattern[str]
    literals: frozenset[str] | None


@dataclass(frozen=True)
class _Matcher:
    """One reason's patterns; ``literals``: all its alternatives' (``None``: search all)."""

    reason: Reason
    alternatives: tuple[_Alternative, ...]
    literals: frozenset[str] | None

    def search(self, text: str, present: set[str]) -> bool:
        """Whether the (lowered) text matches; ``present`` holds the literals of all the
        matchers that occur in it (:class:`_Literals`): only the alternatives one of whose
        literals is there are searched, as most texts contain none of a reason's words."""
        if self.literals is not None and self.literals.isdisjoint(present):
            return False
        for alternative in self.alternatives:
            literals = alternative.literals
            if literals is not None and literals.isdisjoint(present):
                continue
            if alternative.pattern.search(text) is not None:
                return True
        return False


class _Literals:
    """Which of the matchers' literals a text contains, in one regex scan.

    The literals are compiled into one trie-shaped regex; searched again one position after
    each match, it finds at every position the longest literal starting there; the shorter
    literals that are its prefixes are there too (two literals matching at the same position
    are prefixes of each other). One such scan costs about a quarter of 230 ``in`` tests.
    (A search, unlike a lookahead's finditer, skips the positions whose character starts
    no literal without entering the trie: a sixth less on the corpora.)
    """

    def __init__(self, literals: Iterable[str]) -> None:
        unique = sorted(set(literals))
        self._pattern = re.compile(_trie(unique))
        members = set(unique)
        self._closure = {
            lit: frozenset(lit[:i] for i in range(1, len(lit) + 1) if lit[:i] in members)
            for lit in unique
        }

    def present(self, text: str) -> set[str]:
        """The literals that occur in ``text``."""
        found: set[str] = set()
        search, closure = self._pattern.search, self._closure
        pos = 0
        while (match := search(text, pos)) is not None:
            found |= closure[match.group()]
            pos = match.start() + 1
        return found


class _Ordered:
    """Matchers in their order, and which of them each literal lets match: a text is read
    only by the matchers one of whose literals it contains (:meth:`_Matcher.search` says
    no to the others), so the others are not even asked."""

    def __init__(self, matchers: tuple[_Matcher, ...]) -> None:
        self.matchers = matchers
        self._always = frozenset(i for i, m in enumerate(matchers) if m.literals is None)
        by_literal: dict[str, set[int]] = {}
        for index, matcher in enumerate(matchers):
            for literal in matcher.literals or ():
                by_literal.setdefault(literal, set()).add(index)
        self._by_literal = {lit: frozenset(found) for lit, found in by_literal.items()}

    def first(self, text: str, present: set[str]) -> Reason | None:
        """The reason of the first matcher that matches ``text`` (lowered; ``present``: its
        literals), or ``None``."""
        candidates = set(self._always)
        for literal in present:
            candidates.update(self._by_literal.get(literal, ()))
        for index in sorted(candidates):
            matcher = self.matchers[index]
            if matcher.search(text, present):
                return matcher.reason
        return None


def _trie(words: list[str]) -> str:
    """A regex matching the longest of ``words`` at a position (a trie of alternatives)."""
    root: dict[str, dict[str, Any]] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # the end of a word
    return _render(root)


def _render(node: dict[str, dict[str, Any]]) -> str:
    parts = [re.escape(char) + _render(child) for char, child in sorted(node.items()) if char]
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"
    return f"(?:{body})?" if "" in node else body  # greedy: the longest word first


def _compile(*table: tuple[Reason, tuple[str, ...]]) -> tuple[_Matcher, ...]:
    # One regex per alternative, compiled once at import. Patterns are lower case and
    # matched against the lowered text: re.IGNORECASE is several times slower.
    matchers = []
    for reason, alts in table:
        alternatives = tuple(
            _Alternative(re.compile(alt), frozenset(required_options(alt)) or None) for alt in alts
        )
        usable = all(a.literals is not None for a in alternatives)
        literals = frozenset().union(*(a.literals or () for a in alternatives))
        matchers.append(_Matcher(reason, alternatives, literals if usable else None))
    return tuple(matchers)


# Specific texts, most specific first; the first match wins. Alternatives of one reason
# are joined into one regex.
_SPECIFIC_TEXT = _compile(
    (
        R.VACATION,
        (r"\b(out of (the )?office|auto(matic)?[ -]?reply|vacation (message|reply|notice))\b",),
    ),
    (
        R.EXPIRED,
        (
            r"retry time(out)? (exceeded|reached)",
            r"(message|delivery) (has )?expired",
            r"(message|delivery) (has )?timed out",
            r"too long in (the )?queue",
            r"could not be delivered (for|within|in) \d+",
            r"delivery time expired",
            r"(message )?(is )?too old",
            r"gave up .{0,30}for \d+ (days|hours)",
            r"maximum (queue|delivery) time",
            # Netscape/iPlanet "not delivered within 2 days", "within the allowed queue
            # period"; Ipswitch SMTP32 "Delivery failed 20 attempts"; "not been collected
            # after 30 days" (a message left uncollected in a holding mailbox).
            r"not (be(en)? )?delivered within \d+",
            r"within the (allowed )?queue period",
            r"failed (after )?\d+ (delivery )?attempts",
            r"not (been )?collected (after|within|for|in) \d+",
        ),
    ),
    (
        R.SECURITY_ERROR,
        (
            r"starttls",
            r"\btls\b.{0,30}(required|fail|not (available|offered|supported))",
            r"encryption (is )?(needed|required)",
            r"certificate (verif\w+ |validation )?(failed|error|expired)",
            r"ssl (error|handshake)",
            r"handshake fail",
            r"must use (tls|encryption)",
        ),
    ),
    (
        R.VIRUS_DETECTED,
        (
            r"\bvirus",
            r"malware",
            r"trojan",
            r"infected",
            r"\bworm\b",
            r"\bclamav\b",
        ),
    ),
    (
        R.BAD_REPUTATION,
        (
            r"reputation",
            r"unusual rate",
            r"sender ?score",
            r"\[tss?0\d\]",
            r"unexpected volume",
            r"complaints? (rate|from our users)",
            r"high (volume|rate) of (spam|complaints)",
        ),
    ),
    (
        R.AUTH_FAILURE,
        (
            r"\b(spf|dkim|dmarc)\b",
            r"sender policy framework",
            r"unauthenticated",
            r"not authenticated",
            r"authentication (check )?(fail|did not pass)",
            r"not (authorized|permitted) to send",
            r"does not designate",
            r"not designated as permitted",
            r"domain-based message authentication",
        ),
    ),
    (
        R.REQUIRE_PTR,
        (
            r"reverse (dns|lookup|hostname|name)",
            r"\bptr\b",
            r"\brdns\b",
            r"cannot find your hostname",
            r"(ip|client) (name|host(name)?) lookup failed",
            r"fcrdns",
            r"does not have a (valid )?hostname",
            r"no reverse",
        ),
    ),
    (
        R.BLOCKED,
        (
            r"black ?list",
            r"block ?list",
            r"deny ?list",
            r"spamhaus",
            r"barracuda",
            r"spamcop",
            r"sorbs",
            r"\b(rbl|dnsbl|uceprotect)\b",
            r"(?<!not )listed (at|on|in|by)",
            r"banned sending ip",
            r"\bs31[45]0\b",
            r"(ip|network|host|client)( address)?\W.{0,40}"
            r"\b(is )?(blocked|banned|blacklisted|not allowed)",
            r"(blocked|banned) (ip|host)",
            r"poor ip",
            r"\bip\b.{0,20}\b(is )?(blocked|banned)",
        ),
    ),
    (
        R.SPAM_DETECTED,
        (
            r"\bspam\b",
            r"unsolicited",
            r"junk mail",
            r"\bube\b",
            r"bulk (e-?)?mail",
            r"phish",
            r"scam",
            r"suspicious",
            r"spam ?(score|assassin)",
            r"classified as (junk|bulk)",
        ),
    ),
    (
        R.NO_RELAYING,
        (
            r"relay(ing)? (access )?(denied|not permitted|prohibited|not allowed|refused)",
            r"(not permitted|unable|not allowed) to relay",
            r"we do not relay",
            r"rcpthosts",
            r"relay not permitted",
            r"not a (gateway|relay)",
        ),
    ),
    (
        R.REJECTED,
        (
            r"sender (address |domain )?(rejected|refused|denied|invalid|unknown|not allowed"
            r"|verify failed|verification failed|does not exist|must (exist|resolve))",
            r"domain of sender( address)?\W.{0,60}(does not exist|not found|not resolve|invalid)",
            r"(mail from|envelope sender|return[- ]path)\W.{0,40}"
            r"(rejected|invalid|unknown|refused)",
            r"bad sender",
            r"unverifiable sender",
            r"unroutable sender",
            r"sender is not allowed",
        ),
    ),
    (
        R.HAS_MOVED,
        (
            r"has moved",
            r"moved (to|permanently)",
            r"no longer (at|with|uses) this address",
            r"(address|mailbox) (has )?changed",
            r"changed (his|her|their) (e-?mail )?address",
            r"owner has changed",
        ),
    ),
    (
        R.SUSPEND,
        (
            r"account (has been |is )?(disabled|suspended|deactivated|locked|frozen|expired"
            r"|closed|terminated|inactive)",
            r"(mailbox|user|recipient|address)( account)? (is |has been )?"
            r"(disabled|suspended|deactivated|inactive|frozen|locked|closed)",
            r"tried to reach is (disabled|inactive)",
            r"(is|mailbox) not active",
            r"inactive (user|account|mailbox)",
        ),
    ),
    (
        R.SYSTEM_FULL,
        (
            r"insufficient system storage",
            r"system (storage|disk) (is )?full",
            r"no space left",
            r"disk (is )?full",
            r"out of (disk|storage) space",
            r"file ?system (is )?full",
        ),
    ),
    (
        R.MAILBOX_FULL,
        (
            r"(mailbox|quota|inbox|mail box|mail folder|mailfolder|storage)[^\n]{0,40}"
            r"(full|exceeded|exceeds|over)",
            r"over ?quota",
            r"quota (exceeded|reached)",
            r"insufficient storage",
            r"exceeded storage allocation",
            r"out of storage",
            r"full mailbox",
            r"over (disk )?quota",
            r"exceeding (their |the |its )?quota",
            r"quota violation",
            r"disk ?space quota",
            r"not enough (storage )?space in",
            r"(reached|exceeded) (the |its |their )?(disk |mailbox |storage )?quota",
        ),
    ),
    (
        R.EXCEED_LIMIT,
        (
            r"too many recipients",
            r"recipients? limit",
            r"administrative limit",
            r"exceeds? (the )?(recipient|mailbox|user|per-?user)('s)? .{0,20}limit",
        ),
    ),
    (
        R.MESG_TOO_BIG,
        (
            r"(message|mail) (is )?too (big|large)",
            r"(message|mail) size exceeds",
            r"size limit",
            r"exceeds (the )?(maximum|fixed maximum|allowed) (message )?size",
            r"exceed(s|ed)? (the )?(maximum|allowed) .{0,20}message size",
            r"message length exceeds",
            r"(message|mail) (size )?exceeds",
            r"too large",
        ),
    ),
    (
        R.RATE_LIMITED,
        (
            r"too many (connections|concurrent|sessions|simultaneous|messages|mails|emails)",
            r"rate.?limit",
            r"too (fast|quickly)",
            r"too high a rate",
            r"receiving mail at a rate",
            r"throttl",
            r"slow down",
            r"connection limit",
            r"rate (exceeded|reached)",
            r"limit (exceeded|reached)",
            r"try again in \d+",
        ),
    ),
    (
        R.GREYLISTED,
        (r"gr[ae]y ?list",),
    ),
    (
        R.NOT_ACCEPT,
        (
            r"does not accept (e-?)?mail",
            r"null mx",
            r"not accepting (network )?(messages|mail)",
            r"accepts? no mail",
            r"does not receive mail",
        ),
    ),
    (
        R.HOST_UNKNOWN,
        (
            r"host (or domain name )?(not found|unknown)",
            r"domain (name )?(not found|does ?n.t exist|is not valid|unknown)",
            r"no such domain",
            r"unrouteable (mail )?domain",
            r"name or service not known",
            r"nxdomain",
            r"domain has no (mx|mail)",
            r"no mx record",
            r"unknown domain",
            r"host not found",
            r"no such host",
            r"unable to route",
            r"unknown host",
            # qmail: "Sorry, I couldn't find any host named x. (#5.1.2)"; a gateway with
            # no route for the recipient's domain (RFC 3463 X.4.4): "Could not find a
            # gateway for a@b" (not "no route to host": that is a network error).
            r"couldn't find any host",
            r"(could not|cannot|can't|unable to) find a gateway for",
        ),
    ),
    (
        R.USER_UNKNOWN,
        (
            r"user ?unknown",
            r"unknown (user|recipient|mailbox|address|local[- ]part|alias)",
            r"no such (user|mailbox|recipient|address|account|person)",
            r"(mailbox|user|recipient|address|account|addressee)( name)? (does ?n[o']t exist"
            r"|not found|not exist|unknown|is (unknown|invalid|not valid)|invalid|unavailable"
            r"|not available)",
            r"invalid (recipient|mailbox|address|user)",
            r"recipient (rejected|not found|unknown|invalid)",
            r"not a valid (mailbox|recipient|user)",
            r"unrouteable address",
            r"no mailbox here",
            r"doesn't have an? .{0,40}account",
            r"is not a known user",
            r"addressee unknown",
            r"bad destination mailbox",
            r"user (is )?not (found|local|here|listed)",
            r"no longer (active|valid|available|in use)",
            r"not our customer",
            r"undeliverable address",
            r"recipnotfound",
            r"recipient address rejected: access denied",
            r"user not known",
            r"non-?existent (user|mailbox|address|recipient|account)",
            r"n'existe pas",
            r"not unique\.\s+several matches",
            r"does not have a final (e-?mail )?delivery point",
            r"recipientnotfound",
            r"nosuchuser",
            r"does not exist",
            r"not listed in",
            r"no valid recipients",
            # Ipswitch IMail/SMTP32: "Invalid final delivery userid: a@b".
            r"invalid (final delivery )?user ?id",
            # Directory-lookup mailers (phquery and site variants): no such person.
            r"no matches to (the )?name ?server query",
            r"did not (exactly )?match (an?|any) .{0,40}address",
        ),
    ),
    (
        R.NOT_COMPLIANT_RFC,
        (
            r"not (rfc|rfc ?\d+)[ -]?compliant",
            r"rfc ?(5322|2822|822|5321)",
            r"malformed (header|message)",
            r"header.{0,30}(invalid|malformed|missing)",
            r"missing (required )?(header|from|date|message-id)",
            r"duplicate header",
            r"bare (lf|linefeed|cr|newline)",
            r"multiple (from|sender|date) headers",
            # A required header missing: CommuniGate Pro "Messages without To: fields are
            # not accepted here"; "554 No Resent-From field given" (RFC 5322 3.6.6).
            r"without (an? )?[\w-]+:? (header|field)s? (are|is) not",
            r"no [\w-]+:? field given",
            r"no [\w-]+:? header (given|found|present)",
        ),
    ),
    (
        R.CONTENT_ERROR,
        (
            r"content (rejected|filter|not allowed|refused)",
            r"banned (content|attachment|file|extension)",
            r"attachment.{0,30}(not allowed|rejected|prohibited|blocked)",
            r"executable",
            r"mime (error|violation)",
            r"invalid mime",
            r"illegal (attachment|content)",
            r"file type",
            r"message content",
        ),
    ),
    (
        R.MAILER_ERROR,
        (
            r"procmail",
            r"unknown mailer",
            r"mailer (error|failed)",
            r"local delivery (failed|error)",
            r"exit (code|status) \d+",
            r"command (died|failed)",
            r"pipe to",
            r"delivery to (a )?(program|pipe)",
            r"(maildrop|dovecot-lda|deliver):",
            r"cannot (open|write) (mailbox|file)",
            r"permission denied",
        ),
    ),
    (
        R.SYNTAX_ERROR,
        (
            r"syntax error",
            r"command (not recognized|unrecognized|not implemented)",
            r"unrecognized command",
            r"bad sequence of commands",
            r"parameters? not (recognized|implemented)",
            r"invalid command",
            r"protocol error",
            r"out of sequence",
            r"line too long",
        ),
    ),
    (
        R.ON_HOLD,
        (
            r"on hold",
            r"quarantined",
            r"pending (moderation|approval|review)",
            r"held (in|for) (moderation|review)",
            r"held until .{0,40}(moderator|approv|review)",
        ),
    ),
)

# Generic texts: only when neither a specific text nor a specific code said anything.
_GENERIC_TEXT = _compile(
    (
        R.BLOCKED,
        (
            r"\bblocked\b",
            r"\bbanned\b",
        ),
    ),
    (
        R.NETWORK_ERROR,
        (
            r"connection (was )?(refused|reset|lost|closed|timed out|dropped)",
            r"did not respond",
            r"connection to .{0,40} failed",
            r"message looping",
            r"timed? ?out",
            r"no route to host",
            r"network (is )?unreachable",
            r"(could not|unable to|cannot) connect",
            r"host (is )?unreachable",
            r"lost connection",
            r"broken pipe",
            r"routing loop",
            r"mail loop",
            r"loop(s)? (back|detected)",
            r"too many hops",
            r"dns (error|failure|lookup failed|timeout)",
            r"lookup failed",
            r"servfail",
            r"no mx host answered",
        ),
    ),
    (
        R.POLICY_VIOLATION,
        (
            r"polic(y|ies)",
            r"not (allowed|permitted|authorized)",
            r"prohibited",
            r"violat",
            r"terms of service",
            r"denied",
            r"refused",
            r"rejected by",
            r"not accepted",
        ),
    ),
    (
        R.SYSTEM_ERROR,
        (
            r"system error",
            r"internal (server )?error",
            r"local error",
            r"server error",
            r"temporar(y|ily) (failure|error|unavailable|local problem|rejected|deferred)",
            r"service (is )?(temporarily )?(unavailable|not available)",
            r"resources temporarily",
            r"try (again )?later",
            r"please try again",
            r"i/o error",
            r"out of memory",
            r"local delivery failure",
            r"requested action aborted",
        ),
    ),
    (
        # A delay warning that names no cause: not decided yet (sisimai's "onhold").
        R.ON_HOLD,
        (
            r"delivery attempts will continue",
            r"will (continue to )?(be )?retr(y|ied)",
            r"has not yet been delivered",
        ),
    ),
)

_LITERALS = _Literals(
    lit
    for matcher in (*_SPECIFIC_TEXT, *_GENERIC_TEXT)
    for alternative in matcher.alternatives
    for lit in alternative.literals or ()
)
_SPECIFIC_ORDER = _Ordered(_SPECIFIC_TEXT)
_GENERIC_ORDER = _Ordered(_GENERIC_TEXT)

# RFC 3463 3.x (and the RFC 5248 registry) "subject.detail" codes whose meaning is clear.
_SPECIFIC_CODE: dict[str, Reason] = {
    "1.1": R.USER_UNKNOWN,
    "1.2": R.HOST_UNKNOWN,
    "1.3": R.USER_UNKNOWN,
    "1.4": R.USER_UNKNOWN,
    "1.5": R.USER_UNKNOWN,
    "1.6": R.HAS_MOVED,
    "1.7": R.REJECTED,
    "1.8": R.REJECTED,
    "1.10": R.NOT_ACCEPT,
    "2.1": R.SUSPEND,
    "2.2": R.MAILBOX_FULL,
    "2.3": R.EXCEED_LIMIT,
    "2.4": R.SYSTEM_ERROR,
    "3.1": R.SYSTEM_FULL,
    "3.2": R.NOT_ACCEPT,
    "3.3": R.CONTENT_ERROR,
    "3.4": R.MESG_TOO_BIG,
    "3.5": R.SYSTEM_ERROR,
    "4.1": R.NETWORK_ERROR,
    "4.2": R.NETWORK_ERROR,
    "4.3": R.NETWORK_ERROR,
    "4.4": R.HOST_UNKNOWN,
    "4.5": R.RATE_LIMITED,
    "4.6": R.NETWORK_ERROR,
    "4.7": R.EXPIRED,
    "5.1": R.SYNTAX_ERROR,
    "5.2": R.SYNTAX_ERROR,
    "5.3": R.EXCEED_LIMIT,
    "5.4": R.SYNTAX_ERROR,
    "5.5": R.SYNTAX_ERROR,
    "5.6": R.SYNTAX_ERROR,
    "6.1": R.CONTENT_ERROR,
    "6.2": R.CONTENT_ERROR,
    "6.3": R.CONTENT_ERROR,
    "6.4": R.CONTENT_ERROR,
    "6.5": R.CONTENT_ERROR,
    "6.6": R.CONTENT_ERROR,
    "6.7": R.CONTENT_ERROR,
    "6.8": R.CONTENT_ERROR,
    "6.9": R.CONTENT_ERROR,
    "6.10": R.CONTENT_ERROR,
    "7.2": R.POLICY_VIOLATION,
    "7.3": R.SECURITY_ERROR,
    "7.4": R.SECURITY_ERROR,
    "7.5": R.SECURITY_ERROR,
    "7.6": R.SECURITY_ERROR,
    "7.7": R.SECURITY_ERROR,
    "7.8": R.AUTH_FAILURE,
    "7.9": R.SECURITY_ERROR,
    "7.10": R.SECURITY_ERROR,
    "7.11": R.SECURITY_ERROR,
    "7.12": R.AUTH_FAILURE,
    "7.13": R.SUSPEND,
    "7.14": R.POLICY_VIOLATION,
    "7.15": R.AUTH_FAILURE,
    "7.16": R.AUTH_FAILURE,
    "7.17": R.HAS_MOVED,
    "7.18": R.HAS_MOVED,
    "7.20": R.AUTH_FAILURE,
    "7.21": R.AUTH_FAILURE,
    "7.22": R.AUTH_FAILURE,
    "7.23": R.AUTH_FAILURE,
    "7.24": R.AUTH_FAILURE,
    "7.25": R.REQUIRE_PTR,
    "7.26": R.AUTH_FAILURE,
    "7.27": R.REJECTED,
    "7.28": R.BAD_REPUTATION,
    "7.29": R.AUTH_FAILURE,
    "7.30": R.AUTH_FAILURE,
}
# Generic codes: the default when no text said more.
_GENERIC_CODE: dict[str, Reason] = {
    "3.0": R.SYSTEM_ERROR,
    "4.0": R.NETWORK_ERROR,
    "5.0": R.SYNTAX_ERROR,
    "6.0": R.CONTENT_ERROR,
    "7.0": R.POLICY_VIOLATION,
    "7.1": R.POLICY_VIOLATION,
}
# Reply codes (RFC 5321 4.2.2/4.2.3) whose meaning does not depend on the text.
_REPLY_CODE: dict[int, Reason] = {
    421: R.SYSTEM_ERROR,
    452: R.SYSTEM_FULL,
    500: R.SYNTAX_ERROR,
    501: R.SYNTAX_ERROR,
    502: R.SYNTAX_ERROR,
    503: R.SYNTAX_ERROR,
    504: R.SYNTAX_ERROR,
    552: R.MAILBOX_FULL,
    555: R.SYNTAX_ERROR,
}

#: The diagnostic text the matcher reads: what events and DSNs keep (500) and a little more.
_MAX_TEXT = 600
_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


@dataclass(frozen=True)
class Explanation:
    """A failure's reason, whether it is final, and its status (always set for a failure)."""

    reason: Reason
    permanent: bool
    status: str
    derived: bool  # the status was derived (the report or reply gave none)

    @property
    def info(self) -> ReasonInfo:
        """The reason's row of :data:`REASONS`."""
        return REASONS[self.reason]


def reason_of(status: str, smtp_code: int, text: str) -> Reason:
    """The reason for a failure's status ("5.1.1" or ""), reply code (0: none) and text."""
    text = text[:_MAX_TEXT].lower()
    present = _LITERALS.present(text)
    found = _SPECIFIC_ORDER.first(text, present)
    if found is not None:
        return found
    subject = _subject(status)
    specific = _SPECIFIC_CODE.get(subject)
    if specific is not None:
        return specific
    found = _GENERIC_ORDER.first(text, present)
    if found is not None:
        return found
    generic = _GENERIC_CODE.get(subject)
    if generic is not None:
        return generic
    return _REPLY_CODE.get(smtp_code, R.UNDEFINED)


def explain(
    status: str,
    smtp_code: int,
    text: str,
    permanent: bool | None = None,
    *,
    context: str = "",
) -> Explanation:
    """The reason, permanence and status of one failure (pure; table-tested).

    ``permanent`` is what the report decided (RFC 3464 Action), ``None`` when it did not:
    then the status class, else the reply code's class, else the reason's default decides.
    ``context`` is the report's words around the failure (a text bounce's line start and
    the words above its list of addresses), read only when ``text`` names no reason.
    The status is ``status`` when valid, else derived: the permanence's class ("5"/"4") and
    the reason's subject.detail (a 550 "user unknown" becomes 5.1.1).
    """
    reason = reason_of(status, smtp_code, text)
    if reason is R.UNDEFINED and context:
        # As the report wrote them (line breaks in the middle of a phrase): collapsed only
        # here, as few failures need them.
        reason = reason_of(status, smtp_code, " ".join(context.split()))
    info = REASONS[reason]
    valid = _STATUS.match(status.strip())
    if permanent is None:
        if valid:
            permanent = valid.group(1) == "5"
        elif 400 <= smtp_code < 600:
            permanent = smtp_code >= 500
        else:
            permanent = info.permanent
    if valid:
        return Explanation(reason, permanent, status.strip(), derived=False)
    if not info.detail:
        return Explanation(reason, permanent, "", derived=False)
    klass = "5" if permanent else "4"
    return Explanation(reason, permanent, f"{klass}.{info.detail}", derived=True)


def reason_names() -> tuple[str, ...]:
    """Every reason name (the bounded label set of the bounce counters)."""
    return tuple(str(r) for r in Reason)


def _subject(status: str) -> str:
    match = _STATUS.match(status.strip())
    if match is None or match.group(1) == "2":
        return ""
    return f"{int(match.group(2))}.{int(match.group(3))}"
