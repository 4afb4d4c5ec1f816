"""Source-address pools and their warm-up schedule (``[pools]``), shared by the deliverer
(which sends from them), the reputation stage (which steps warming addresses along the
schedule) and the CLI (``postline pool check|status``).

A pool is a set of local addresses, each with the EHLO name its PTR record gives (receivers
compare the two: a mismatch is a spam signal, RFC 5321 4.1.4 and the large providers' sender
rules) and an optional weight. A tenant, one of its sending domains, or its bulk mail is
assigned a pool by name (the tenant record); mail with no assignment uses ``default``. An
address marked ``warmup`` sends at most its day's allowance per provider: a new IP has no
reputation, and the providers throttle or junk volume from one they do not know.

Owns the config Structs and their cross-checks. Does not choose an address (the deliverer
does) nor count anything (the reputation stage does).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

import msgspec

_STRUCT = {"frozen": True, "forbid_unknown_fields": True, "kw_only": True}

Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class PoolAddress(msgspec.Struct, **_STRUCT):
    """One local address of a pool."""

    address: str  # a local IPv4 or IPv6 address to bind outgoing connections to
    ehlo_name: str = ""  # the EHLO name (its PTR name); "" = deliverer.ehlo_name
    weight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1  # share of the pool's traffic
    warmup: bool = False  # new address: follows [pools.warmup] until it has warmed up


class Pool(msgspec.Struct, **_STRUCT):
    """A named set of source addresses."""

    addresses: list[PoolAddress]
    #: What happens to mail when every address of the pool has used its warm-up allowance
    #: for the day: "wait" holds it in a retry tier until the next UTC day (or the message
    #: expires), "overflow" sends it from the pool named by ``overflow`` instead.
    over_allowance: Literal["wait", "overflow"] = "wait"
    overflow: str = ""  # the pool that takes the excess with over_allowance = "overflow"


class WarmupConfig(msgspec.Struct, **_STRUCT):
    """The warm-up schedule and when a warming address advances, holds or steps back.

    Each UTC day, the day before is judged (its sends to the provider, and the bounces,
    complaints and deferrals that came back): healthy and mostly used -> the next step;
    a rate over the step-back level -> the step before; otherwise it holds.
    """

    #: Messages per provider per UTC day at each step; past the last step the address is warm
    #: and sends without an allowance. The default roughly doubles, as SparkPost, Mailgun and
    #: the large providers' postmaster guides advise for a new IP.
    schedule: tuple[Annotated[int, msgspec.Meta(ge=1)], ...] = (
        50,
        100,
        500,
        1000,
        5000,
        10000,
        20000,
        50000,
        100000,
        250000,
    )
    #: Advance only when the day used at least this share of its allowance (a quiet day
    #: proves nothing about volume).
    min_use: Fraction = 0.5
    advance_max_bounce_rate: Fraction = 0.02  # hard bounces / sent
    advance_max_complaint_rate: Fraction = 0.001  # complaints / sent
    advance_max_deferral_rate: Fraction = 0.10  # deferred attempts / attempts
    back_bounce_rate: Fraction = 0.05  # hard bounces / sent over this: one step back
    back_complaint_rate: Fraction = 0.003  # complaints / sent over this: one step back
    back_deferral_rate: Fraction = 0.30  # deferred attempts / attempts over this: one step back
    #: An address that has not advanced for this many days is "stuck" (an alert fires).
    stuck_after_days: Annotated[int, msgspec.Meta(ge=1)] = 7


class PoolsConfig(msgspec.Struct, **_STRUCT):
    """The ``[pools]`` section."""

    default: str = ""  # the pool of mail with no assignment ("" = the OS picks the address)
    bulk: str = ""  # the pool of bulk mail whose tenant names no bulk pool ("" = as others)
    pool: dict[str, Pool] = {}  # name -> pool ([pools.pool.<name>])
    warmup: WarmupConfig = WarmupConfig()

    def __post_init__(self) -> None:
        # Cross-checks msgspec cannot express; a ValueError names the field, and
        # Config.section turns it into a ConfigError naming the file.
        for name in (self.default, self.bulk):
            if name and name not in self.pool:
                raise ValueError(f"unknown pool {name!r}")
        seen: dict[str, str] = {}
        for name, pool in self.pool.items():
            if not pool.addresses:
                raise ValueError(f"pool {name!r} has no addresses")
            if pool.over_allowance == "overflow" and (
                pool.overflow not in self.pool or pool.overflow == name
            ):
                raise ValueError(f"pool {name!r}: overflow names no other pool")
            for entry in pool.addresses:
                try:
                    ipaddress.ip_address(entry.address)
                except ValueError:
                    raise ValueError(
                        f"pool {name!r}: {entry.address!r} is not an IP address"
                    ) from None
                if entry.address in seen and seen[entry.address] != name:
                    # One address, one warm-up state and one EHLO name: never in two pools.
                    raise ValueError(
                        f"address {entry.address} is in pools {seen[entry.address]!r} and {name!r}"
                    )
                seen[entry.address] = name

    def warming(self) -> dict[str, PoolAddress]:
        """Every address marked ``warmup``, by address."""
        return {
            entry.address: entry
            for pool in self.pool.values()
            for entry in pool.addresses
            if entry.warmup
        }


def warmup_key(address: str, provider: str) -> str:
    """The ``postline.reputation`` key of an address's warm-up state with a provider."""
    return f"address|{address}|{provider}"
