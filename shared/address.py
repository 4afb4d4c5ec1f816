"""TEMPORARY shim until the parser moves here."""

from services.ingest.address import AddressError, parse_mailbox

__all__ = ["AddressError", "parse_mailbox"]
