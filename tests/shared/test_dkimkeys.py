"""DKIM key generation and the TXT records that publish keys."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from shared.dkimkeys import (
    algorithm_of,
    generate_private_key,
    load_private_key,
    public_p,
    record_name,
    txt_record,
    txt_strings,
    zone_strings,
)


def test_rsa_2048_record_needs_two_strings() -> None:
    key = load_private_key(generate_private_key("rsa"))
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    record = txt_record(algorithm_of(key), public_p(key))
    assert record.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # SubjectPublicKeyInfo, 2048 bits
    strings = txt_strings(record)
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == record
    assert zone_strings(record) == f'"{strings[0]}" "{strings[1]}"'


def test_ed25519_p_is_the_raw_key() -> None:
    key = load_private_key(generate_private_key("ed25519"))
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert len(base64.b64decode(public_p(key))) == 32  # RFC 8463 4.2
    record = txt_record("ed25519", public_p(key))
    assert txt_strings(record) == [record]
    assert record_name("s1", "example.test") == "s1._domainkey.example.test"


def test_not_a_key_refused() -> None:
    with pytest.raises(ValueError):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
