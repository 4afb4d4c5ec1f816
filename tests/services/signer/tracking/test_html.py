"""Links and the end of the body found in HTML without re-serialising it (html.py), and
bare URLs in plain text (plaintext.py)."""

from __future__ import annotations

import pytest

from services.signer.tracking.html import attribute_value, scan
from services.signer.tracking.plaintext import bare_urls


def urls(text: str) -> list[str]:
    return [spot.url for spot in scan(text).links]


def test_spans_cover_exactly_the_href_values() -> None:
    text = (
        "<p><a href=\"https://a.test/1\">one</a> <A class=x HREF='https://a.test/2'>two</A>"
        " <area shape=rect href=https://a.test/3 /></p>"
    )
    found = scan(text).links
    assert [text[s.start : s.end] for s in found] == [
        "https://a.test/1",
        "https://a.test/2",
        "https://a.test/3",
    ]
    assert [s.url for s in found] == [text[s.start : s.end] for s in found]


def test_entities_are_decoded_for_the_url_but_the_span_is_the_raw_value() -> None:
    text = '<a href="https://a.test/p?x=1&amp;y=2&#38;z=3">go</a>'
    [spot] = scan(text).links
    assert spot.url == "https://a.test/p?x=1&y=2&z=3"
    assert text[spot.start : spot.end] == "https://a.test/p?x=1&amp;y=2&#38;z=3"


def test_whitespace_around_and_newlines_inside_are_dropped_as_a_browser_does() -> None:
    [spot] = scan('<a href="  https://a.test/long\n/path  ">x</a>').links
    assert spot.url == "https://a.test/long/path"


def test_links_that_are_never_tracked() -> None:
    text = (
        '<a href="mailto:x@a.test">m</a><a href="tel:+331">t</a><a href="sms:+331">s</a>'
        '<a href="#top">a</a><a href="/relative">r</a><a href="javascript:go()">j</a>'
        '<a href="ftp://a.test/f">f</a><a name="anchor">n</a><a href>empty</a>'
        '<a href="https://">nohost</a>'
        '<a data-postline-notrack href="https://a.test/keep">k</a>'
        '<a href="https://a.test/yes">y</a>'
    )
    assert urls(text) == ["https://a.test/yes"]


def test_comments_scripts_and_styles_are_not_links() -> None:
    text = (
        '<!-- <a href="https://a.test/c"> --><script>var s = \'<a href="https://a.test/s">\';'
        '</script><style>a[href="https://a.test/y"]{}</style><a href="https://a.test/real">r</a>'
    )
    assert urls(text) == ["https://a.test/real"]


def test_first_href_wins_like_a_browser() -> None:
    assert urls('<a href="https://a.test/1" href="https://a.test/2">x</a>') == ["https://a.test/1"]


def test_body_end_is_the_last_closing_body_tag() -> None:
    text = "<html><body>x</BODY>\r\n</body></html>"
    assert scan(text).body_end == text.rindex("</body>")
    assert scan("<p>fragment</p>").body_end is None


def test_positions_hold_across_crlf_lines_and_non_ascii_text() -> None:
    text = "<html>\r\n<body>\r\n<p>Caf\u00e9 \u2014 \U0001f600</p>\r\n<a href='https://a.test/\u00e9'>x</a>"
    [spot] = scan(text).links
    assert text[spot.start : spot.end] == "https://a.test/\u00e9"


def test_bare_urls_in_text_stop_at_spaces_brackets_and_sentence_punctuation() -> None:
    text = (
        "Go to https://a.test/x. Or (https://a.test/y) or <https://a.test/z>,\r\n"
        "see https://a.test/wiki/A_(b) and mailto:x@a.test and xhttps://no.test"
    )
    assert [s.url for s in bare_urls(text)] == [
        "https://a.test/x",
        "https://a.test/y",
        "https://a.test/z",
        "https://a.test/wiki/A_(b)",
    ]
    assert all(text[s.start : s.end] == s.url for s in bare_urls(text))


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("https://a.test/?a=1&amp;b=2", "https://a.test/?a=1&b=2"),
        ("https://a.test/?a=1&amp=2", "https://a.test/?a=1&amp=2"),  # legacy name then "="
        ("https://a.test/?a=1&copy=2", "https://a.test/?a=1&copy=2"),
        ("https://a.test/?a=1&copyx", "https://a.test/?a=1&copyx"),  # then an alphanumeric
        ("https://a.test/?a=1&copy;x", "https://a.test/?a=1\u00a9x"),
        ("https://a.test/?a=1&copy", "https://a.test/?a=1\u00a9"),
        ("https://a.test/?q=&#38;&#x26;&#38x", "https://a.test/?q=&&&x"),
        ("https://a.test/?q=&nosuch;", "https://a.test/?q=&nosuch;"),
    ],
)
def test_references_decode_as_in_an_attribute_value(raw: str, url: str) -> None:
    assert attribute_value(raw) == url
    [spot] = scan(f'<a href="{raw}">x</a>').links
    assert spot.url == url


def test_raw_text_elements_and_declarations_hide_what_looks_like_links() -> None:
    text = (
        "<!DOCTYPE html><?xml x=\"<a href='https://a.test/pi'>\"?>"
        '<title><a href="https://a.test/t"></title>'
        '<textarea><a href="https://a.test/ta"></TEXTAREA >'
        '<![CDATA[ x ]]><a href="https://a.test/ok">ok</a>'
        "<style>x{}</style"  # an unclosed raw-text element: the rest is its text
        '<a href="https://a.test/never">'
    )
    assert urls(text) == ["https://a.test/ok"]


def test_unclosed_tags_and_quotes() -> None:
    assert urls('<a href="https://a.test/1" <a href="https://a.test/2">x</a>') == [
        "https://a.test/1"
    ]  # "<a" is an attribute name of the first tag, as in a browser
    assert urls('<a href="https://a.test/cut') == []  # end of text inside a tag
    assert urls("<a href=https://a.test/u>x</a><a href='https://a.test/s'>") == [
        "https://a.test/u",
        "https://a.test/s",
    ]


def test_a_flood_of_unclosed_tags_is_read_in_one_pass() -> None:
    # 60 KB of "<a " kept the stdlib parser of Python 3.11 busy for 40 s (quadratic).
    assert scan("<a " * 20_000).links == []
    assert scan("<a href='https://a.test/'>" * 20_000).links[-1].url == "https://a.test/"
