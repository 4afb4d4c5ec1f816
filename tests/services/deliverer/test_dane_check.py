"""The DANE certificate check (RFC 7672 3.1): TLSA records against certificate chains from
the test PKI, pure logic with a fixed clock, and the chain as a real TLS handshake
delivers it (``peer_chain`` reads CPython's private API before 3.13)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.deliverer.transport.dane import (
    MAX_CHAIN,
    DaneCheck,
    Tlsa,
    check_chain,
    names_host,
    peer_chain,
)
from services.deliverer.transport.policy import ResultType, TlsCheckFailed
from testing.pki import Issued, make_ca, make_leaf, server_context, tlsa

NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)
HOST = "mx1.dane.test"


def _records(*texts: str) -> list[Tlsa]:
    return [Tlsa.parse(text) for text in texts]


def _fails(chain: list[Issued], records: list[Tlsa], host: str = HOST) -> ResultType:
    with pytest.raises(TlsCheckFailed) as failure:
        check_chain([c.cert for c in chain], host, records, NOW)
    return failure.value.result_type


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    root = make_ca("Root", now=NOW)
    mid = make_ca("Mid", issuer=root, now=NOW)
    return {
        "root": root,
        "mid": mid,
        "leaf": make_leaf(mid, [HOST], now=NOW),
        "other": make_leaf(mid, ["mx9.elsewhere.test"], now=NOW),
        "expired": make_leaf(mid, [HOST], now=NOW, expired=True),
        "self": make_leaf(None, ["whatever.test"], now=NOW, expired=True),
    }


@pytest.mark.parametrize("params", [(3, 0, 0), (3, 0, 1), (3, 1, 1), (3, 1, 2), (3, 0, 2)])
def test_dane_ee_matches_the_leaf_whatever_its_name_and_dates(
    pki: dict[str, Issued], params: tuple[int, int, int]
) -> None:
    # RFC 7672 3.1.1: with DANE-EE neither names nor expiry are checked.
    record = tlsa(*params, pki["self"])
    check_chain([pki["self"].cert], HOST, _records(record), NOW)
    assert _fails([pki["leaf"], pki["mid"]], _records(record)) is ResultType.VALIDATION_FAILURE


def test_dane_ee_never_matches_an_issuer(pki: dict[str, Issued]) -> None:
    records = _records(tlsa(3, 1, 1, pki["mid"]))
    assert _fails([pki["leaf"], pki["mid"]], records) is ResultType.VALIDATION_FAILURE


@pytest.mark.parametrize("anchor", ["mid", "root"])
@pytest.mark.parametrize("params", [(2, 0, 1), (2, 1, 1), (2, 1, 2), (2, 0, 0)])
def test_dane_ta_accepts_a_chain_to_a_presented_anchor(
    pki: dict[str, Issued], anchor: str, params: tuple[int, int, int]
) -> None:
    records = _records(tlsa(*params, pki[anchor]))
    # The presented order does not matter, only the signatures.
    check_chain([pki["leaf"].cert, pki["root"].cert, pki["mid"].cert], HOST, records, NOW)


def test_dane_ta_anchor_must_be_presented(pki: dict[str, Issued]) -> None:
    records = _records(tlsa(2, 0, 1, pki["root"]))
    assert _fails([pki["leaf"], pki["mid"]], records) is ResultType.VALIDATION_FAILURE


def test_dane_ta_checks_the_leaf_names_the_mx_host(pki: dict[str, Issued]) -> None:
    records = _records(tlsa(2, 0, 1, pki["mid"]))
    chain = [pki["other"], pki["mid"]]
    assert _fails(chain, records) is ResultType.CERTIFICATE_HOST_MISMATCH
    check_chain([c.cert for c in chain], "mx9.elsewhere.test", records, NOW)


def test_dane_ta_checks_expiry_below_the_anchor(pki: dict[str, Issued]) -> None:
    records = _records(tlsa(2, 0, 1, pki["mid"]))
    assert _fails([pki["expired"], pki["mid"]], records) is ResultType.CERTIFICATE_EXPIRED


def test_dane_ta_rejects_a_forged_or_non_ca_issuer(pki: dict[str, Issued]) -> None:
    # Same issuer name, another key: the leaf's signature does not verify with the anchor.
    impostor = make_ca("Mid", issuer=pki["root"], now=NOW)
    forged = make_leaf(impostor, [HOST], now=NOW)
    records = _records(tlsa(2, 0, 1, pki["mid"]))
    assert _fails([forged, pki["mid"]], records) is ResultType.VALIDATION_FAILURE
    # An issuer whose BasicConstraints say it is no CA cannot anchor a chain.
    not_ca = make_ca("NotCA", issuer=pki["root"], now=NOW, ca=False)
    leaf = make_leaf(not_ca, [HOST], now=NOW)
    records = _records(tlsa(2, 0, 1, not_ca))
    assert _fails([leaf, not_ca], records) is ResultType.VALIDATION_FAILURE


def test_empty_chain_fails(pki: dict[str, Issued]) -> None:
    assert _fails([], _records(tlsa(3, 1, 1, pki["leaf"]))) is ResultType.VALIDATION_FAILURE


DIGEST = "ab" * 32


@pytest.mark.parametrize(
    ("text", "usable"),
    [
        (f"3 1 1 {DIGEST}", True),
        (f"2 0 1 {DIGEST}", True),
        ("3 0 2 " + "cd" * 64, True),
        ("3 0 0 3082", True),
        (f"1 1 1 {DIGEST}", False),  # PKIX-EE: unusable for SMTP (3.1.3)
        (f"0 0 1 {DIGEST}", False),  # PKIX-TA
        (f"3 2 1 {DIGEST}", False),  # unknown selector
        (f"3 1 3 {DIGEST}", False),  # unknown matching type
        ("3 1 1 abcd", False),  # a truncated SHA-256
        ("3 1 2 " + "cd" * 32, False),  # a SHA-512 cut to SHA-256's length
    ],
)
def test_usable_records(text: str, usable: bool) -> None:
    assert Tlsa.parse(text).usable is usable


def test_tlsa_presentation_form() -> None:
    assert Tlsa.parse(f"3 1 1 {DIGEST[:20]} {DIGEST[20:]}").data == bytes.fromhex(DIGEST)
    for malformed in ("3 1 1", "3 1 x ab", "3 1 1 zz"):
        with pytest.raises(ValueError):
            Tlsa.parse(malformed)


def _bare_cert(
    cn: str, issuer: Issued | None, *, ca: bool | None, san: Sequence[str] | None
) -> Issued:
    """A certificate with only what is asked: BasicConstraints when ``ca`` is not None, a
    subjectAltName when ``san`` is not None (``testing.pki`` always adds both)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), False
        )
    signer = issuer.key if issuer is not None else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@pytest.mark.parametrize(
    ("host", "named"),
    [
        ("mx1.dane.test", True),
        ("MAIL.example.test.", True),
        ("a.mx1.dane.test", False),  # one label only
        ("dane.test", False),
        ("mx", False),  # a host without a dot has no parent for a wildcard
    ],
)
def test_reference_identifiers(host: str, named: bool) -> None:
    wild = make_leaf(None, ["*.dane.test", "mail.example.test"], now=NOW)
    assert names_host(wild.cert, host) is named


def test_the_common_name_counts_only_without_a_subject_alt_name() -> None:
    # RFC 6125 6.4.4.
    assert names_host(_bare_cert(HOST, None, ca=False, san=None).cert, HOST) is True
    with_san = _bare_cert(HOST, None, ca=False, san=["mx2.dane.test"]).cert
    assert names_host(with_san, HOST) is False


def test_a_host_mismatch_says_what_the_leaf_names(pki: dict[str, Issued]) -> None:
    records = _records(tlsa(2, 0, 1, pki["mid"]))
    with pytest.raises(TlsCheckFailed) as failure:
        check_chain([pki["other"].cert, pki["mid"].cert], HOST, records, NOW)
    assert failure.value.detail == f"certificate does not name {HOST}: mx9.elsewhere.test"
    nameless = make_leaf(pki["mid"], [], now=NOW)  # an IP address only
    with pytest.raises(TlsCheckFailed) as failure:
        check_chain([nameless.cert, pki["mid"].cert], HOST, records, NOW)
    assert failure.value.detail == f"certificate does not name {HOST}: (no names)"


def test_validity_includes_both_ends(pki: dict[str, Issued]) -> None:
    # RFC 5280 4.1.2.5: valid from notBefore through notAfter, inclusive.
    records = _records(tlsa(2, 0, 1, pki["root"]))
    chain = [pki["leaf"].cert, pki["mid"].cert, pki["root"].cert]
    leaf = pki["leaf"].cert
    check_chain(chain, HOST, records, leaf.not_valid_before_utc)
    check_chain(chain, HOST, records, leaf.not_valid_after_utc)
    before = leaf.not_valid_before_utc - datetime.timedelta(seconds=1)
    with pytest.raises(TlsCheckFailed):
        check_chain(chain, HOST, records, before)


def test_a_dane_ta_record_of_the_leaf_is_no_anchor(pki: dict[str, Issued]) -> None:
    # DANE-TA names an issuer the leaf chains up to; a record for the leaf itself is
    # DANE-EE's job (RFC 7672 3.1.1), which also skips the name check this would need.
    records = _records(tlsa(2, 0, 1, pki["leaf"]))
    assert _fails([pki["leaf"], pki["mid"]], records) is ResultType.VALIDATION_FAILURE


def test_an_issuer_without_basic_constraints_cannot_anchor(pki: dict[str, Issued]) -> None:
    # RFC 5280 4.2.1.9: without BasicConstraints cA, the key must not verify certificates.
    issuer = _bare_cert("NoConstraints", pki["root"], ca=None, san=None)
    leaf = make_leaf(issuer, [HOST], now=NOW)
    records = _records(tlsa(2, 0, 1, issuer))
    assert _fails([leaf, issuer], records) is ResultType.VALIDATION_FAILURE


def test_the_chain_walk_stops_at_max_chain() -> None:
    # Leaf, intermediates and the anchor: ten certificates (MAX_CHAIN) are walked, eleven
    # not (a server cannot make us verify signatures without end).
    def chain_of(length: int) -> tuple[list[x509.Certificate], list[Tlsa]]:
        anchor = issuer = make_ca("Anchor", now=NOW)
        certs = [anchor]
        for n in range(length - 2):
            issuer = make_ca(f"Mid {n}", issuer=issuer, now=NOW)
            certs.append(issuer)
        certs.append(make_leaf(issuer, [HOST], now=NOW))
        return [c.cert for c in reversed(certs)], _records(tlsa(2, 1, 1, anchor))

    assert MAX_CHAIN == 10
    chain, records = chain_of(10)
    check_chain(chain, HOST, records, NOW)
    chain, records = chain_of(11)
    with pytest.raises(TlsCheckFailed):
        check_chain(chain, HOST, records, NOW)


async def test_check_on_a_real_handshake(pki: dict[str, Issued]) -> None:
    """The chain as sent over TLS (leaf and intermediate) reaches the check; the client
    context verifies nothing itself, as a DANE HostPolicy asks (verify_webpki False)."""
    context = server_context(pki["leaf"], [pki["mid"]])

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        ssl_object = writer.get_extra_info("ssl_object")
        assert peer_chain(ssl_object) == [pki["leaf"].der(), pki["mid"].der()]
        clock = lambda: NOW  # noqa: E731
        DaneCheck(tuple(_records(tlsa(2, 1, 1, pki["mid"]))), clock)(ssl_object, HOST)
        DaneCheck(tuple(_records(tlsa(3, 1, 1, pki["leaf"]))), clock)(ssl_object, HOST)
        with pytest.raises(TlsCheckFailed) as failure:
            DaneCheck(tuple(_records(tlsa(3, 1, 1, pki["other"]))), clock)(ssl_object, HOST)
        assert failure.value.result_type is ResultType.VALIDATION_FAILURE
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


#: id-ecPublicKey's OID in DER, and an unassigned one of the same length beside it.
_EC_KEY = bytes.fromhex("06072A8648CE3D0201")
_UNKNOWN_KEY = bytes.fromhex("06072A8648CE3D0209")


def _unreadable_key(issued: Issued) -> x509.Certificate:
    """``issued``'s certificate with a public key algorithm cryptography does not know (as a
    GOST or SM2 key would be): the certificate loads, its key does not."""
    return x509.load_der_x509_certificate(issued.der().replace(_EC_KEY, _UNKNOWN_KEY))


def test_a_key_we_cannot_read_fails_the_check_instead_of_raising(
    pki: dict[str, Issued],
) -> None:
    # Such a certificate is a mismatch (VALIDATION_FAILURE, the next MX host is tried), not
    # an exception out of the session's check.
    leaf = _unreadable_key(pki["leaf"])
    records = _records(tlsa(3, 1, 1, pki["leaf"]))
    with pytest.raises(TlsCheckFailed) as failure:
        check_chain([leaf], HOST, records, NOW)
    assert failure.value.result_type is ResultType.VALIDATION_FAILURE
    assert records[0].matches(leaf) is False
    # Selector 0 matches the certificate as sent, key or no key.
    full = Tlsa.parse(f"3 0 0 {leaf.public_bytes(serialization.Encoding.DER).hex()}")
    check_chain([leaf], HOST, [full], NOW)
    # An issuer whose key cannot be read cannot have signed the leaf: no path to the anchor.
    mid = _unreadable_key(pki["mid"])
    records = _records(tlsa(2, 0, 0, pki["root"]))
    with pytest.raises(TlsCheckFailed) as failure:
        check_chain([pki["leaf"].cert, mid, pki["root"].cert], HOST, records, NOW)
    assert failure.value.result_type is ResultType.VALIDATION_FAILURE


class _Python313SslObject:
    """Stands for Python 3.13's ``SSLObject``, whose public ``get_unverified_chain`` gives
    DER bytes (``None`` before the handshake); the suite runs on 3.11, whose private API
    ``test_check_on_a_real_handshake`` covers."""

    def __init__(self, chain: list[bytes] | None) -> None:
        self._chain = chain

    def get_unverified_chain(self) -> list[bytes] | None:
        return self._chain


def test_peer_chain_on_python_3_13(pki: dict[str, Issued]) -> None:
    ders = [pki["leaf"].der(), pki["mid"].der()]
    assert peer_chain(_Python313SslObject(ders)) == ders  # type: ignore[arg-type]
    assert peer_chain(_Python313SslObject(None)) == []  # type: ignore[arg-type]


def test_an_unreadable_extra_certificate_in_the_chain_is_passed_over(
    pki: dict[str, Issued],
) -> None:
    # A server may send any bytes as its chain; one whose extensions cannot be read (here
    # BasicConstraints twice, RFC 5280 4.2) is no issuer, and the walk goes on to the next.
    extra = _bare_cert("Mid", pki["root"], ca=True, san=["mid.test"])
    san, basic_constraints = bytes.fromhex("0603551D11"), bytes.fromhex("0603551D13")
    broken = x509.load_der_x509_certificate(extra.der().replace(san, basic_constraints))
    with pytest.raises(x509.DuplicateExtension):
        broken.extensions  # noqa: B018
    records = _records(tlsa(2, 0, 1, pki["root"]))
    chain = [pki["leaf"].cert, broken, pki["mid"].cert, pki["root"].cert]
    check_chain(chain, HOST, records, NOW)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = bytes([size]) if size < 0x80 else bytes([0x82, size >> 8, size & 0xFF])
    return bytes([tag]) + length + content


def test_a_leaf_whose_extensions_cannot_be_read_fails_the_check(
    pki: dict[str, Issued],
) -> None:
    # A CA that signed a leaf with an extension twice (RFC 5280 4.2 forbids it): its names
    # cannot be read, so it names no host; the check fails instead of raising.
    leaf = make_leaf(pki["mid"], [HOST], now=NOW).cert
    eku, san = bytes.fromhex("0603551D25"), bytes.fromhex("0603551D11")
    tbs = leaf.tbs_certificate_bytes.replace(eku, san)  # subjectAltName twice
    signature = pki["mid"].key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    ecdsa_with_sha256 = bytes.fromhex("300A06082A8648CE3D040302")
    der = _der(0x30, tbs + ecdsa_with_sha256 + _der(0x03, b"\x00" + signature))
    broken = x509.load_der_x509_certificate(der)
    broken.verify_directly_issued_by(pki["mid"].cert)  # a real signature over it
    records = _records(tlsa(2, 0, 1, pki["mid"]))
    with pytest.raises(TlsCheckFailed) as failure:
        check_chain([broken, pki["mid"].cert], HOST, records, NOW)
    assert failure.value.result_type is ResultType.VALIDATION_FAILURE
    assert failure.value.detail.startswith("unreadable certificate extensions of CN=mx1.dane.test")
