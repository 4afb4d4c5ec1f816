"""The bouncer's commands: ``postline bounce classify`` and ``postline suppress ...``.

Owns argument definitions and printing. Parsing and classification are ``parse.py`` and
``classify.py``; reading and writing the suppression list is ``suppress.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.bouncer.config import load_bouncer_config
from shared.wire.records import SuppressionReason

if TYPE_CHECKING:
    from services.bouncer.suppress import SuppressionAdmin
    from shared.bounceclass.rules import RuleTable
    from shared.config import Config

# ``postline bounce ...`` and ``postline suppress ...`` import this module to build their
# parser: the suppression list (``suppress.py``, the bus, the wire topics) is imported by
# the ``suppress`` commands when they run.


def classify_bytes(raw: bytes, table: RuleTable | None = None) -> list[dict[str, Any]]:
    """One JSON-able line per recipient of the message in ``raw`` (one line if none)."""
    # Every postline command builds this module's parser: the parsers, the rule table and
    # the reasons' compiled patterns (about 0.1 s) are imported only by the command that
    # classifies (one import here, the rest at the top of lines.py: four imports on every
    # call cost 6 µs, 2% of a message).
    from services.bouncer.lines import report_lines  # noqa: PLC0415

    return report_lines(raw, table)


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``bounce classify`` and ``suppress add|remove|list|export`` to the CLI."""
    bounce = commands.add_parser("bounce", help="bounce tools")
    bounce_sub = bounce.add_subparsers(dest="bounce_command", required=True)
    classify = bounce_sub.add_parser(
        "classify", help="parse bounce/DSN/ARF files and print recipient, status, class as JSON"
    )
    classify.add_argument("files", nargs="+", type=Path, metavar="FILE")
    classify.set_defaults(handler=cmd_classify)

    suppress = commands.add_parser("suppress", help="manage the suppression list")
    sub = suppress.add_subparsers(dest="suppress_command", required=True)
    add = sub.add_parser("add", help="suppress an address")
    add.add_argument("address")
    add.add_argument("--reason", default="manual", choices=[r.value for r in SuppressionReason])
    add.add_argument(
        "--scope", default="", help="only bulk mail from this sender domain; default: all mail"
    )
    add.add_argument("--tenant", default="", help="only this tenant's mail; default: every tenant")
    add.add_argument("--detail", default="")
    add.set_defaults(handler=cmd_suppress_add)
    remove = sub.add_parser("remove", help="remove an address from the list")
    remove.add_argument("address")
    remove.add_argument("--scope", default="", help="the sender domain of a scoped entry")
    remove.add_argument("--tenant", default="", help="the tenant of a tenant's entry")
    remove.set_defaults(handler=cmd_suppress_remove)
    sub.add_parser("list", help="print the list as JSON lines").set_defaults(
        handler=cmd_suppress_list
    )
    export = sub.add_parser("export", help="write the list as CSV (for audits)")
    export.add_argument("--output", "-o", type=Path, default=None)
    export.set_defaults(handler=cmd_suppress_export)


def cmd_classify(args: argparse.Namespace, config: Config) -> int:
    """``postline bounce classify FILE...``: JSON lines with a ``file`` field."""
    from shared.bounceclass.rules import load_rules  # noqa: PLC0415

    table = load_rules(load_bouncer_config(config).rules_file)
    status = 0
    for path in args.files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            print(f"postline: {path}: {exc.strerror}", file=sys.stderr)
            status = 1
            continue
        for line in classify_bytes(raw, table):
            print(json.dumps({"file": str(path), **line}, ensure_ascii=False))
    return status


async def cmd_suppress_add(args: argparse.Namespace, config: Config) -> int:
    """``postline suppress add ADDRESS [--scope DOMAIN] [--tenant ID]``."""
    if (problem := _scope_problem(args)) is not None:
        print(f"postline: {problem}", file=sys.stderr)
        return 2
    reason = SuppressionReason(args.reason)
    async with _admin(config) as admin:
        record = await admin.add(
            args.address, reason, scope=args.scope, detail=args.detail, tenant=args.tenant
        )
    print(
        json.dumps(
            {
                "suppressed": record.address,
                "scope": record.scope,
                "tenant": record.tenant,
                "reason": reason,
            }
        )
    )
    return 0


async def cmd_suppress_remove(args: argparse.Namespace, config: Config) -> int:
    """``postline suppress remove ADDRESS [--scope DOMAIN] [--tenant ID]``."""
    if (problem := _scope_problem(args)) is not None:
        print(f"postline: {problem}", file=sys.stderr)
        return 2
    async with _admin(config) as admin:
        await admin.remove(args.address, scope=args.scope, tenant=args.tenant)
    print(json.dumps({"removed": args.address, "scope": args.scope, "tenant": args.tenant}))
    return 0


def _scope_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the address, ``--scope`` or ``--tenant`` (as the admin API says)."""
    from services.bouncer.suppress import (  # noqa: PLC0415
        address_problem,
        domain_problem,
        tenant_problem,
    )

    if (problem := address_problem(args.address.strip())) is not None:
        return problem
    if args.scope.strip() and (problem := domain_problem(args.scope.strip())) is not None:
        return f"scope: {problem}"
    return tenant_problem(args.tenant.strip())


async def cmd_suppress_list(_args: argparse.Namespace, config: Config) -> int:
    """``postline suppress list``: one JSON object per suppressed address."""
    from services.bouncer.suppress import suppression_row  # noqa: PLC0415

    async with _admin(config) as admin:
        for record in await admin.snapshot():
            print(json.dumps(suppression_row(record)))
    return 0


async def cmd_suppress_export(args: argparse.Namespace, config: Config) -> int:
    """``postline suppress export [-o FILE]``: CSV with a header line."""
    from services.bouncer.suppress import export_csv  # noqa: PLC0415

    async with _admin(config) as admin:
        text = export_csv(await admin.snapshot())
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, "utf-8")
    return 0


def _admin(config: Config) -> SuppressionAdmin:
    from services.bouncer.suppress import SuppressionAdmin  # noqa: PLC0415
    from shared.addresshash import load_hash_key_if_present  # noqa: PLC0415
    from shared.bus.factory import open_bus  # noqa: PLC0415

    # A client of the bus, not its owner: works beside a running `postline run`.
    return SuppressionAdmin(
        open_bus(config, owner=False),
        source="cli",
        owns_bus=True,
        hash_key=load_hash_key_if_present(config),
    )
