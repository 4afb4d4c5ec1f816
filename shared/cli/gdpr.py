"""``postline gdpr export|erase ADDRESS [--tenant T]``: a person's data rights.

``export`` prints, as one JSON object, everything held about an address: the reporting
store's rows (``shared.store.gdpr``) and the compacted topics' records (``shared.gdpr``).
``erase`` removes it: the compacted topics first (suppressions replaced by their keyed hash,
so the address stays suppressed; the rest tombstoned), in one atomic publish, then the store
rows with the erasure record (no address, its keyed hash) in one database transaction. Each
step finds what is left, so an erase that failed halfway is finished by running it again.
Without ``--yes`` it prints what it would erase and exits 1, erasing nothing.

The bus is a client bus (``shared.cli.tenant.client_bus``): beside a running ``postline run``
or against Kafka. The keyed-hash key is ``[secrets] gdpr_hash_key_file``: created when
missing on the embedded bus (one host: ingest and the signer read the same file), required
on Kafka (a key made up here would match nothing the stages know). The store and the
database drivers are imported when a command runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shared import gdpr
from shared.addresshash import address_hash, ensure_hash_key, load_hash_key
from shared.bus.base import Bus
from shared.cli.tenant import actor, client_bus
from shared.config import Config
from shared.errors import ConfigError, StoreError, TenantInvalid
from shared.store import location
from shared.tenant_fields import tenant_id
from shared.wire.records import now

#: Exit code of an erase that was not confirmed (``--yes``): nothing was erased.
EXIT_NOT_CONFIRMED = 1
#: Exit code when the store cannot be reached (``shared.cli``'s code for an unavailable bus).
EXIT_STORE_UNAVAILABLE = 2


def add_gdpr_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``gdpr export`` and ``gdpr erase``; handlers take ``(args, config)``."""
    gdpr_parser = commands.add_parser(
        "gdpr", help="a person's data: export everything held about an address, or erase it"
    )
    sub = gdpr_parser.add_subparsers(dest="gdpr_command", required=True, metavar="COMMAND")
    export = sub.add_parser("export", help="everything held about ADDRESS, as JSON")
    export.add_argument("address")
    export.add_argument("--tenant", default="", help="only what this tenant holds")
    export.set_defaults(handler=cmd_export)
    erase = sub.add_parser(
        "erase", help="erase ADDRESS (its suppressions stay, under a keyed hash)"
    )
    erase.add_argument("address")
    erase.add_argument("--tenant", default="", help="only what this tenant holds")
    erase.add_argument("--yes", action="store_true", help="erase (without: show what would go)")
    erase.set_defaults(handler=cmd_erase)


def store_url(config: Config) -> str | None:
    """The store to ask, or ``None`` when there is none (``shared.store.location``; on the
    embedded bus only once the store stage has created its file)."""
    return location.store_url(config, existing_only=True)


def _checked(args: argparse.Namespace) -> tuple[str, str]:
    """The address (lower-cased) and tenant of the command line; ``ConfigError`` when
    malformed (nothing is looked up for an address that cannot be one)."""
    address = args.address.strip().lower()
    if "@" not in address or any(ord(c) < 32 for c in address) or len(address) > 254:
        raise ConfigError("command line", "ADDRESS", f"not an address: {args.address!r}")
    tenant = args.tenant.strip().lower()
    if tenant:
        try:
            tenant_id(tenant)
        except TenantInvalid as exc:
            raise ConfigError("command line", "--tenant", str(exc)) from exc
    return address, tenant


async def _store_rows(config: Config, address: str, tenant: str) -> dict[str, Any] | None:
    url = store_url(config)
    if url is None:
        return None
    from shared.store.db import open_database  # noqa: PLC0415  (imports a database driver)
    from shared.store.gdpr import export_address  # noqa: PLC0415

    db = await open_database(url)
    try:
        return await export_address(db, address, tenant)
    finally:
        await db.close()


async def cmd_export(args: argparse.Namespace, config: Config) -> int:
    """``gdpr export ADDRESS``: one JSON object on stdout."""
    address, tenant = _checked(args)
    bus = client_bus(config)
    await bus.start()
    try:
        found = await gdpr.find(bus, address, tenant)
    finally:
        await bus.close()
    try:
        rows = await _store_rows(config, address, tenant)
    except StoreError as exc:
        print(f"store: {exc}", file=sys.stderr)
        return EXIT_STORE_UNAVAILABLE
    out = {
        "address": address,
        "tenant": tenant,
        "store": rows,
        "topics": gdpr.export_view(found),
    }
    print(json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False, default=str))
    return 0


def _hash_key(config: Config) -> bytes:
    if config.core.bus.kind == "embedded":
        ensure_hash_key(config)
    return load_hash_key(config)


async def cmd_erase(args: argparse.Namespace, config: Config) -> int:
    """``gdpr erase ADDRESS [--yes]``: the topics, then the store and the erasure record."""
    address, tenant = _checked(args)
    key = _hash_key(config)
    digest = address_hash(key, address)
    url = store_url(config)
    bus = client_bus(config)
    await bus.start()
    try:
        found = await gdpr.find(bus, address, tenant)
        counts = gdpr.erased_counts(found, address)
        if not args.yes:
            try:
                counts |= await _store_counts(url, address, tenant)
            except StoreError as exc:
                print(f"store: {exc}", file=sys.stderr)
            print(json.dumps({"would_erase": counts, "address_hash": digest}, indent=2))
            print("nothing erased: run again with --yes to erase", file=sys.stderr)
            return EXIT_NOT_CONFIRMED
        await _publish(bus, gdpr.erase_records(found, address, key))
    finally:
        await bus.close()
    if url is not None:
        try:
            counts |= await _erase_store(url, address, tenant, digest, counts)
        except StoreError as exc:
            print(f"store: {exc}; the topics are erased, run the erase again", file=sys.stderr)
            return EXIT_STORE_UNAVAILABLE
    else:
        print("no reporting store: only the topics were erased", file=sys.stderr)
    out = {"address_hash": digest, "tenant": tenant, "erased": counts, "store": url is not None}
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


async def _store_counts(url: str | None, address: str, tenant: str) -> dict[str, int]:
    """The store rows an erase would delete (none without a store)."""
    if url is None:
        return {}
    from shared.store.db import open_database  # noqa: PLC0415  (imports a database driver)
    from shared.store.gdpr import count_address  # noqa: PLC0415

    db = await open_database(url)
    try:
        return {f"store_{k}": n for k, n in (await count_address(db, address, tenant)).items()}
    finally:
        await db.close()


async def _publish(bus: Bus, records: list[Any]) -> None:
    if records:
        await bus.publish(records)


async def _erase_store(
    url: str, address: str, tenant: str, digest: str, counts: dict[str, int]
) -> dict[str, int]:
    from shared.store.db import open_database  # noqa: PLC0415  (imports a database driver)
    from shared.store.gdpr import erase_address  # noqa: PLC0415

    db = await open_database(url)
    try:
        deleted = await erase_address(
            db, address, tenant=tenant, address_hash=digest, by=actor(), at=now(), counts=counts
        )
    finally:
        await db.close()
    return {f"store_{name}": n for name, n in deleted.items()}
