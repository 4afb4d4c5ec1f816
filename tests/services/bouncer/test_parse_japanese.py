"""Japanese carriers' notices in ISO-2022-JP (issue 19, item 2) and the charset handling
they need (``services/bouncer/charsets.py``).

The notices were written by the project in the layout and wording style of each carrier's
Japanese notice, with invented addresses; they are encoded here the way those mailers do
(ISO-2022-JP 7-bit, sometimes unlabelled, base64, with half-width katakana or the NEC
extension row that Microsoft's CP50220 writes).
"""

from __future__ import annotations

import base64
from typing import Any

from services.bouncer.charsets import decode_iso2022jp, decode_text, header_text
from services.bouncer.cli import classify_bytes

# CP50220 bytes for "①" (NEC row 13, 0x2D21), which Python's iso2022_jp codecs refuse.
_NEC_CIRCLED_ONE = b"\x1b$B-!\x1b(B"


def _jis(text: str) -> bytes:
    return text.encode("iso2022_jp")


def _encoded_word(text: str) -> bytes:
    return b"=?ISO-2022-JP?B?" + base64.b64encode(_jis(text)) + b"?="


def _one(raw: bytes) -> dict[str, Any]:
    (line,) = classify_bytes(raw)
    return line


def test_kddi_japanese_notice_user_not_registered() -> None:
    raw = (
        b"Return-Path: <>\n"
        b"From: " + _encoded_word("メール管理者") + b" <postmaster@ezweb.ne.jp>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: " + _encoded_word("メール配信エラーのお知らせ") + b"\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=ISO-2022-JP\n"
        b"Content-Transfer-Encoding: 7bit\n"
        b"\n"
        + _jis(
            "お送りいただいたメールは、以下の理由により届けることができませんでした。\n"
            "\n"
            "以下の受取人は、相手先のメールサーバに受け付けられませんでした。\n"
            "\n"
            "受取人: <haruka.ito-77@ezweb.ne.jp>\n"
            "原因: <haruka.ito-77@ezweb.ne.jp> のユーザーは登録されていません\n"
            "\n"
            "ご不明な点は postmaster@ezweb.ne.jp までご連絡ください。\n"
        )
    )
    line = _one(raw)
    assert (line["recipient"], line["status"], line["permanent"], line["class"]) == (
        "haruka.ito-77@ezweb.ne.jp",
        "5.1.1",
        True,
        "hard",
    )
    assert line["parser"] == "carrier:kddi"
    assert "登録されていません" in line["diagnostic"]


def test_docomo_unlabelled_iso2022jp_with_katakana_refused_by_settings() -> None:
    # No charset label (us-ascii by RFC 2045), half-width katakana (ESC ( I): the recipient's
    # reception settings refused the sender.
    body = (
        _jis("以下のあて先へのメールは送信できませんでした。\n\n")
        + b"<daichi.k0312@docomo.ne.jp>\n\n"
        + _jis("受信者の受信設定により、受信拒否されました。")
        + "ﾄﾞｺﾓ".encode("iso2022_jp_ext")
        + b"\n"
    )
    raw = (
        b"From: Mail Delivery Subsystem <MAILER-DAEMON@docomo.ne.jp>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Returned mail\n"
        b"Content-Type: text/plain\n"
        b"\n" + body
    )
    line = _one(raw)
    assert (line["recipient"], line["status"], line["permanent"]) == (
        "daichi.k0312@docomo.ne.jp",
        "5.7.1",
        True,
    )
    assert line["parser"] == "carrier:docomo"


def test_softbank_base64_notice_with_nec_characters_mailbox_full() -> None:
    # Found by its Japanese subject alone (the sender is no daemon name), base64 with a
    # CP50220 circled digit in the text: mailbox full is temporary.
    text = (
        _jis("下記のメールアドレスへの配信に失敗しました。\n")
        + _NEC_CIRCLED_ONE
        + _jis(" 宛先: mika.s_55@i.softbank.jp\n")
        + _jis("理由: メールボックスの容量を超えているため受信できません。\n")
    )
    raw = (
        b"From: " + _encoded_word("ソフトバンク メールセンター") + b" <notice@i.softbank.jp>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: " + _encoded_word("メール配信失敗") + b"\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: text/plain; charset="iso-2022-jp"\n'
        b"Content-Transfer-Encoding: base64\n"
        b"\n" + base64.encodebytes(text)
    )
    line = _one(raw)
    assert (line["recipient"], line["status"], line["permanent"], line["class"]) == (
        "mika.s_55@i.softbank.jp",
        "4.2.2",
        False,
        "soft",
    )
    assert "容量を超えている" in line["diagnostic"]


def test_iso2022jp_is_read_whatever_the_label() -> None:
    data = _jis("宛先不明です")
    for label in (None, "us-ascii", "utf-8", "ISO-2022-JP", "iso-2022-jp-2"):
        assert decode_text(data, label) == "宛先不明です"
    # Another ISO-2022 family keeps its own codec.
    assert decode_text("안녕".encode("iso2022_kr"), "iso-2022-kr") == "안녕"


def test_iso2022jp_supersets_and_damaged_runs() -> None:
    katakana = "ｴﾗｰ".encode("iso2022_jp_ext")
    assert decode_iso2022jp(katakana) == "ｴﾗｰ"
    assert decode_iso2022jp(_NEC_CIRCLED_ONE + _jis("番")) == "①番"
    # A run no codec reads costs only itself.
    broken = _jis("前") + b"\x1b$(Q\x7f\x7f\x1b(B" + _jis("後")
    decoded = decode_iso2022jp(broken)
    assert decoded.startswith("前") and decoded.endswith("後")
    # A line break inside a two-byte run (no switch back first) keeps the line.
    assert decode_iso2022jp(b"\x1b$B0l\n0l\x1b(B") == "一\n一"


def test_shift_jis_label_reads_the_vendor_superset() -> None:
    assert decode_text("①容量".encode("cp932"), "Shift_JIS") == "①容量"


def test_header_text_decodes_encoded_words_and_raw_iso2022jp() -> None:
    assert header_text(_encoded_word("配信エラー").decode() + " (1)") == "配信エラー (1)"
    assert header_text("Re: " + _jis("不達").decode("ascii")) == "Re: 不達"
    assert header_text("plain words") == "plain words"
