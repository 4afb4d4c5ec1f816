"""The signer's CLI commands: ``dkim keygen``, ``dkim check`` and ``domain check``.

``domain check`` also shows what mail *to* the domain meets (its MTA-STS policy, its MX
hosts' TLSA records, its TLS-RPT record): the rows are ``shared.transportcheck``'s, so the
deliverer's code stays the deliverer's.

Owns argument parsing and output of these commands; the work is in ``keys.py`` (key files)
and ``dnscheck.py`` (DNS). Exit codes: 0 all good, 1 a problem was found (or a key file
already exists).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.signer.config import load_signer_config
from shared.config import Config

if TYPE_CHECKING:
    from services.signer.keys import KeyStore

# The commands import keys.py and the DNS checks (cryptography, dnspython) when they run:
# every ``postline`` command builds this parser and must not load them.

EXIT_OK = 0
EXIT_PROBLEM = 1
#: ``shared.dkimkeys.ALGORITHMS``, spelled out so the parser needs no cryptography (a test
#: keeps the two equal).
KEYGEN_ALGORITHMS = ("rsa", "ed25519")


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``dkim keygen|check`` and ``domain check`` with the ``postline`` CLI."""
    dkim = subparsers.add_parser("dkim", help="DKIM keys: generate, check against DNS")
    actions = dkim.add_subparsers(dest="dkim_command", required=True, metavar="COMMAND")
    keygen = actions.add_parser("keygen", help="write a new key and print its DNS TXT record")
    keygen.add_argument("--domain", required=True, help="the signing domain (d=)")
    keygen.add_argument("--selector", required=True, help="the selector (s=)")
    keygen.add_argument("--algorithm", choices=KEYGEN_ALGORITHMS, default="rsa")
    keygen.add_argument("--bits", type=int, default=2048, help="RSA key size (>= 2048)")
    keygen.add_argument("--keys-dir", type=Path, help="default: signer.keys_dir of the config")
    keygen.set_defaults(handler=cmd_keygen)
    check = actions.add_parser("check", help="compare published TXT records with local keys")
    check.add_argument("domain")
    _add_lookup_options(check)
    check.set_defaults(handler=cmd_dkim_check)
    domain = subparsers.add_parser("domain", help="check a sending domain's DNS")
    domain_actions = domain.add_subparsers(dest="domain_command", required=True, metavar="COMMAND")
    domain_check = domain_actions.add_parser(
        "check",
        help="SPF, DKIM selectors, DMARC, the bounce domain's MX; MTA-STS, DANE, TLS-RPT",
    )
    domain_check.add_argument("domain")
    domain_check.add_argument("--bounce-domain", help="default: signer.bounce_domain")
    _add_lookup_options(domain_check)
    domain_check.add_argument(
        "--mta-sts-ca-file",
        type=Path,
        metavar="PEM",
        help="check the MTA-STS policy host against this CA (labs, tests; default: system CAs)",
    )
    domain_check.add_argument(
        "--mta-sts-port",
        type=int,
        default=443,
        metavar="PORT",
        help="HTTPS port of mta-sts.<domain> (labs, tests; RFC 8461 says 443)",
    )
    domain_check.set_defaults(handler=cmd_domain_check)


def _add_lookup_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys-dir", type=Path, help="default: signer.keys_dir of the config")
    parser.add_argument(
        "--nameserver",
        default="",
        metavar="HOST[:PORT]",
        help="ask this server instead of the system resolver",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per lookup")


def cmd_keygen(args: argparse.Namespace, config: Config) -> int:
    """Write ``<selector>._domainkey.<domain>.<alg>.pem`` (0600) and print the TXT record."""
    from services.signer.keys import (  # noqa: PLC0415
        generate_private_key,
        key_filename,
        parse_key_file,
        write_private_key,
    )
    from shared.dkimkeys import zone_strings  # noqa: PLC0415

    directory = args.keys_dir or load_signer_config(config).keys_dir
    if args.algorithm == "rsa" and args.bits < 2048:
        print("RSA keys below 2048 bits are refused (the signer would not load them)")
        return EXIT_PROBLEM
    domain = args.domain.lower().rstrip(".")
    name = key_filename(domain, args.selector, args.algorithm)
    try:
        path = write_private_key(directory, name, generate_private_key(args.algorithm, args.bits))
    except FileExistsError:
        print(f"{directory / name} already exists; choose a new selector to rotate")
        return EXIT_PROBLEM
    key = parse_key_file(path)
    print(f"wrote {path} (mode 0600)")
    print("publish this DNS record, then wait for it to propagate before signing with it:")
    print(f"{key.name}. IN TXT {zone_strings(key.txt_record())}")
    return EXIT_OK


def _store(args: argparse.Namespace, config: Config) -> KeyStore:
    from services.signer.keys import KeyStore  # noqa: PLC0415

    store = KeyStore(args.keys_dir or load_signer_config(config).keys_dir)
    store.load()
    return store


async def cmd_dkim_check(args: argparse.Namespace, config: Config) -> int:
    """Compare each local selector of the domain with its published TXT record."""
    from services.signer.dnscheck import check_dkim  # noqa: PLC0415
    from shared.dnscheck import Lookup, format_table, has_problems, make_resolver  # noqa: PLC0415

    lookup = Lookup(make_resolver(args.nameserver, args.timeout))
    rows = await check_dkim(lookup, _store(args, config), args.domain.lower().rstrip("."))
    print(format_table(rows))
    return EXIT_PROBLEM if has_problems(rows) else EXIT_OK


async def cmd_domain_check(args: argparse.Namespace, config: Config) -> int:
    """Print the domain's SPF/DKIM/DMARC/bounce-MX table, then what mail to it meets
    (MTA-STS, DANE, TLS-RPT: ``shared.transportcheck``); non-zero exit on a problem."""
    from services.signer.dnscheck import check_domain  # noqa: PLC0415
    from shared.dnscheck import (  # noqa: PLC0415
        Lookup,
        SendingPolicy,
        format_table,
        has_problems,
        make_resolver,
    )
    from shared.mtasts_fetch import PolicyFetcher  # noqa: PLC0415 (aiohttp)
    from shared.transportcheck import check_transport  # noqa: PLC0415

    section = load_signer_config(config)
    resolver = make_resolver(args.nameserver, args.timeout)
    lookup = Lookup(resolver)
    policy = SendingPolicy(section.spf_include, section.sending_ips)
    bounce_domain = (args.bounce_domain or section.bounce_domain).lower().rstrip(".")
    domain = args.domain.lower().rstrip(".")
    rows = await check_domain(lookup, _store(args, config), domain, bounce_domain, policy)
    fetcher = PolicyFetcher(
        ca_file=args.mta_sts_ca_file,
        resolver=resolver,
        port=args.mta_sts_port,
        connect_timeout=args.timeout,
        timeout=args.timeout * 3,
    )
    try:
        rows += await check_transport(lookup, domain, fetcher)
    finally:
        await fetcher.close()
    print(format_table(rows))
    return EXIT_PROBLEM if has_problems(rows) else EXIT_OK
