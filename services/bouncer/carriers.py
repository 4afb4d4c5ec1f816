"""Mobile carriers' and SMS gateways' bounces: KDDI/au, NTT docomo, SoftBank, Verizon.

Owns recognising the fixed-text notices these carriers' mail gateways send (by the
reporting domain: ``ezweb.ne.jp``, ``au.com``, ``docomo.ne.jp``, ``softbank.ne.jp``,
``vtext.com``, ...) and giving them the status their phrases stand for: they carry no
enhanced status code and often no reply code ("As their mailbox is full.", "Invalid MDN"),
so the classifier would otherwise see nothing. The failed addresses are found by
``textbounce.py``'s readers; a status the text itself gives always wins.
"""

from __future__ import annotations

import re
from dataclasses import replace
from email.message import Message

from services.bouncer.report import Report, body_text, clean_address
from services.bouncer.textbounce import parse_text_bounce

_CARRIERS = {
    "ezweb.ne.jp": "kddi",
    "au.com": "kddi",
    "kddi.com": "kddi",
    "docomo.ne.jp": "docomo",
    "softbank.ne.jp": "softbank",
    "i.softbank.jp": "softbank",
    "vtext.com": "verizon",
    "vzwpix.com": "verizon",
    "vzw.com": "verizon",
}
# Per carrier, the phrases of its notices and the RFC 3463 status each stands for, most
# specific first. Mailbox full is 4.2.2: the carriers send it at once, and the mailbox
# takes mail again once its owner deletes some.
# The Japanese carriers' notices in Japanese (ISO-2022-JP, decoded by ``charsets.py``): no
# such address ("宛先不明", "登録されていません", "存在しません"), suspended ("利用停止"),
# mailbox full ("容量を超え", "一杯"), too big ("サイズ", "大きすぎ"), refused by the
# recipient's reception settings ("受信拒否", "指定受信"). Specific causes first: a notice
# says "rejected by the remote server" before giving the cause.
_JAPANESE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"宛先不明|登録されていません|存在しません|見つかりません|ユーザー?不明"), "5.1.1"),
    (re.compile(r"(利用|サービス)を?(一時)?停止|休止中"), "5.2.1"),
    (re.compile(r"容量を?(超|オーバー)|(一杯|いっぱい|満杯)"), "4.2.2"),
    (re.compile(r"サイズ(が|の)?(制限|上限|大き|超)|大きすぎ"), "5.3.4"),
    (re.compile(r"受信拒否|拒否され|受信(設定|制限)|指定受信|迷惑メール"), "5.7.1"),
)
_PHRASES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "kddi": (
        (re.compile(r"user unknown|no such user|not (a )?valid (recipient|user)", re.I), "5.1.1"),
        (re.compile(r"account is disabled|account has been suspended", re.I), "5.2.1"),
        (re.compile(r"mailbox is full|mailbox full|over quota", re.I), "4.2.2"),
        (re.compile(r"message (size|is too large)|exceeds? the (maximum|size)", re.I), "5.3.4"),
        *_JAPANESE,
    ),
    "docomo": (
        # The recipient's reception settings refuse the sender ("specified domain" filters).
        (re.compile(r"rejected|reception (setting|refus)|filter", re.I), "5.7.1"),
        (re.compile(r"mailbox (is )?full|over quota", re.I), "4.2.2"),
        # The bare "did not receive this message" form is docomo's "no such subscriber".
        (re.compile(r"did not receive this message|user unknown", re.I), "5.1.1"),
        *_JAPANESE,
    ),
    "softbank": (
        (re.compile(r"user unknown|no such user|did not receive", re.I), "5.1.1"),
        (re.compile(r"mailbox (is )?full|over quota", re.I), "4.2.2"),
        *_JAPANESE,
    ),
    "verizon": (
        (
            re.compile(
                r"invalid mdn|not a verizon wireless subscriber|no valid recipients|"
                r"unknown (user|subscriber)",
                re.I,
            ),
            "5.1.1",
        ),
        (re.compile(r"quota|storage (is )?full|mailbox (is )?full", re.I), "4.2.2"),
        (re.compile(r"message (size|too large)|exceeds? the (maximum|size)", re.I), "5.3.4"),
    ),
}


def parse_carrier_bounce(msg: Message) -> Report | None:
    """A carrier's or SMS gateway's bounce with the status its text stands for, else ``None``."""
    carrier = _carrier(msg)
    if not carrier:
        return None
    report = parse_text_bounce(msg)
    if report is None:
        return None
    status = _status(carrier, body_text(msg))
    if not status:
        return replace(report, parser=f"carrier:{carrier}")
    # A full mailbox is temporary whatever the text parser guessed from "could not be
    # delivered"; otherwise its reading of "will retry" / "gave up" stands.
    temporary = status.startswith("4")
    recipients = tuple(
        r if r.status else replace(r, status=status, action="" if temporary else r.action)
        for r in report.recipients
    )
    return replace(report, recipients=recipients, parser=f"carrier:{carrier}")


def _carrier(msg: Message) -> str:
    domain = clean_address(str(msg.get("From", ""))).rpartition("@")[2].lower().rstrip(".")
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        name = _CARRIERS.get(".".join(labels[start:]))
        if name:
            return name
    return ""


def _status(carrier: str, text: str) -> str:
    for pattern, status in _PHRASES[carrier]:
        if pattern.search(text[:4000]):
            return status
    return ""
