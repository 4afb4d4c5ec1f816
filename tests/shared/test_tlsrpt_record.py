"""The TLS-RPT record's syntax (RFC 8460 3)."""

from __future__ import annotations

import pytest

from shared.tlsrpt_record import TlsRptInvalid, parse_tlsrpt, tlsrpt_name, tlsrpt_rua


@pytest.mark.parametrize(
    ("record", "rua"),
    [
        ("v=TLSRPTv1; rua=mailto:reports@example.com", ("mailto:reports@example.com",)),
        (
            "v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt",
            ("https://reporting.example.com/v1/tlsrpt",),
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x;",
            ("mailto:a@example.com", "https://r.example.com/x"),
        ),
        ("v=TLSRPTv1; ext=1; rua=mailto:a@example.com", ("mailto:a@example.com",)),
    ],
)
def test_valid_records(record: str, rua: tuple[str, ...]) -> None:
    assert parse_tlsrpt(record) == rua
    assert tlsrpt_rua(["v=spf1 -all", record]) == rua


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("v=TLSRPTv1", "no rua"),
        ("v=TLSRPTv1; rua=http://example.com/plain", "mailto: or https:"),
        ("v=TLSRPTv1; rua=reports@example.com", "mailto: or https:"),
        ("v=TLSRPTv1; rua=mailto:a@example.com; bad field", "malformed"),
        ("v=tlsrptv1; rua=mailto:a@example.com", "v=TLSRPTv1"),
    ],
)
def test_invalid_records(record: str, why: str) -> None:
    with pytest.raises(TlsRptInvalid, match=why):
        parse_tlsrpt(record)


def test_none_or_several_records() -> None:
    assert tlsrpt_rua([]) is None
    assert tlsrpt_rua(["v=spf1 -all", "v=TLSRPTv10; rua=mailto:a@b.c"]) is None
    with pytest.raises(TlsRptInvalid, match="2 v=TLSRPTv1 records"):
        tlsrpt_rua(["v=TLSRPTv1; rua=mailto:a@b.c", "v=TLSRPTv1; rua=mailto:d@e.f"])
    assert tlsrpt_name("Example.COM.") == "_smtp._tls.example.com"
