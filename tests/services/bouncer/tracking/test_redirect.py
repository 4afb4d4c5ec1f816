"""What a click may redirect to, and the pixel's bytes (pure parts of endpoint.py)."""

from __future__ import annotations

import struct

import pytest

from services.bouncer.tracking.endpoint import PIXEL, redirect_target


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/",
        "http://shop.example",
        "https://shop.example/caf%C3%A9?q=a%20b&utm_source=mail#top",
        "HTTPS://Shop.Example/Path?x=1&y=%2F",
        "https://user@shop.example:8443/a;b?c=d",
    ],
)
def test_http_urls_are_kept_exactly(url: str) -> None:
    assert redirect_target(url) == url


def test_non_ascii_and_spaces_are_percent_encoded_as_utf8() -> None:
    assert redirect_target("https://shop.example/café?q=a b") == (
        "https://shop.example/caf%C3%A9?q=a%20b"
    )


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://files.example/x",
        "mailto:someone@example.org",
        "//evil.example/",
        "/relative/path",
        "https:///no-host",
        "https://",
        "https:\\\\evil.example",
        " https://shop.example/",  # leading space: not what the message said
        "https://shop.example/\r\nSet-Cookie: x=1",  # header injection
        "https://shop.example/\x00",
        "",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    assert redirect_target(url) is None


def test_pixel_is_a_transparent_1x1_gif_of_43_bytes() -> None:
    assert len(PIXEL) == 43
    assert PIXEL[:6] == b"GIF89a" and PIXEL[-1:] == b";"
    width, height, flags = struct.unpack("<HHB", PIXEL[6:11])
    assert (width, height) == (1, 1) and flags & 0x80  # a global colour table
    control = PIXEL[19:27]  # the graphic control extension
    assert control[:3] == b"\x21\xf9\x04" and control[3] & 0x01  # transparency on
    assert control[6] == 0  # colour 0 is the transparent one
