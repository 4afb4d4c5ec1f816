"""Measure ``postline bounce classify`` against the real bounce corpora in ``../shared/corpora``.

Usage: ``python bench/corpus_bounces.py [CORPORA_DIR] [--failures]``

Runs the same function the CLI runs (:func:`services.bouncer.cli.classify_bytes`) over every
message with an expected result and prints, per corpus: recipient found correctly, permanent
vs temporary agreement, and "not a bounce" recognised. The corpora are read in place and
never copied (see their README for licences). ``bounced`` ships older copies of
flufl.bounce's files (``bounced/flufl_bounce``); they are counted once, under flufl.bounce.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.bouncer.cli import classify_bytes

BOUNCE_KINDS = ("dsn", "bounce")


@dataclass
class Tally:
    """Counts for one corpus: (passed, total) per measure, plus failing files."""

    name: str
    recipient: list[int] = field(default_factory=lambda: [0, 0])
    recipient_dsn: list[int] = field(default_factory=lambda: [0, 0])
    permanence: list[int] = field(default_factory=lambda: [0, 0])
    not_bounce: list[int] = field(default_factory=lambda: [0, 0])
    failures: list[str] = field(default_factory=list)

    def count(self, measure: str, ok: bool, what: str) -> None:
        """Add one observation; remember what failed."""
        pair = getattr(self, measure)
        pair[1] += 1
        pair[0] += int(ok)
        if not ok:
            self.failures.append(f"{measure}: {what}")


def _lines(raw: bytes) -> list[dict[str, Any]]:
    return classify_bytes(raw)


def _found(results: list[dict[str, Any]]) -> tuple[set[str], str, bool | None]:
    kind = results[0]["kind"] if results else "other"
    addresses = {r["recipient"].lower() for r in results if r.get("recipient")}
    permanent = None
    if results and kind in BOUNCE_KINDS:
        permanent = any(r["permanent"] for r in results)
    return addresses, kind, permanent


def measure_flufl(root: Path) -> Tally:
    """flufl.bounce/data: bounced addresses and temporary/permanent per file."""
    tally = Tally("flufl.bounce")
    expected = json.loads((root / "flufl.bounce/expected.json").read_text())
    for name, detections in sorted(expected.items()):
        want = {a.lower() for d in detections for a in d["addresses"]}
        temporary = all(d["temporary"] for d in detections if d["addresses"]) if want else None
        results = _lines((root / "flufl.bounce/data" / name).read_bytes())
        got, kind, permanent = _found(results)
        if not want:
            continue
        # flufl.bounce names a DSN's Original-Recipient when there is one; we report the
        # Final-Recipient as the recipient (issue 19, item 3) and the Original-Recipient
        # beside it, so either convention counts.
        originals = {(r.get("original_recipient") or r["recipient"] or "").lower() for r in results}
        ok = want in (got, originals - {""})
        tally.count("recipient", ok, f"{name}: want {sorted(want)} got {sorted(got)} ({kind})")
        if kind == "dsn":
            tally.count("recipient_dsn", ok, name)
        if ok and temporary is not None:
            agree = permanent is (not temporary)
            tally.count("permanence", agree, f"{name}: temporary={temporary} ours={permanent}")
    return tally


def measure_bounced(root: Path, skip: set[str]) -> Tally:
    """bounced: RFC 3464 fields per recipient, or null = not a DSN."""
    tally = Tally("bounced")
    expected = json.loads((root / "bounced/expected.json").read_text())["expected"]
    for name, want in sorted(expected.items()):
        if Path(name).stem in skip and name.startswith("flufl_bounce/"):
            continue
        results = _lines((root / "bounced" / name).read_bytes())
        got, kind, permanent = _found(results)
        if want is None:
            if "non_bounces" in name or "auto-respond" in name:
                tally.count("not_bounce", kind not in BOUNCE_KINDS, f"{name}: {kind}")
            continue
        addresses = {w["recipient"].lower() for w in want}
        ok = addresses == got
        tally.count("recipient", ok, f"{name}: want {sorted(addresses)} got {sorted(got)}")
        tally.count("recipient_dsn", ok, name)
        if ok:
            # RFC 3464 2.3.3: Action "failed" is final whatever the status class says.
            perm = any(_permanent(w) for w in want)
            tally.count(
                "permanence", permanent is perm, f"{name}: permanent={perm} ours={permanent}"
            )
    return tally


def _permanent(want: dict[str, Any]) -> bool:
    if want.get("action") in ("failed", "delayed"):
        return bool(want["action"] == "failed")
    return str(want.get("status")).startswith("5")


def measure_baunsu(root: Path) -> Tally:
    """baunsu: bounce_* hard bounces, auto_* auto-replies, ordinary_*/encoded_* not bounces."""
    tally = Tally("baunsu")
    expected = json.loads((root / "baunsu/expected.json").read_text())
    for name, want in sorted(expected.items()):
        results = _lines((root / "baunsu" / name).read_bytes())
        got, kind, permanent = _found(results)
        if want["bounced"]:
            tally.count("recipient", bool(got) and kind in BOUNCE_KINDS, f"{name}: {kind} {got}")
            if got:
                tally.count("permanence", permanent is True, f"{name}: ours={permanent}")
        else:
            ok = kind == "auto_reply" if want["autoresponse"] else kind not in BOUNCE_KINDS
            tally.count("not_bounce", ok, f"{name}: {kind}")
    return tally


def measure_mbd(root: Path) -> Tally:
    """mailbouncedetector: IsBounce, IsHard and FinalRecipient."""
    tally = Tally("mailbouncedetector")
    expected = json.loads((root / "mailbouncedetector/expected.json").read_text())
    for name, want in sorted(expected.items()):
        results = _lines((root / "mailbouncedetector/fixtures" / name).read_bytes())
        got, kind, permanent = _found(results)
        if not want["IsBounce"]:
            tally.count("not_bounce", kind not in BOUNCE_KINDS, f"{name}: {kind}")
            continue
        # Its schema has one FinalRecipient per file; a bounce naming more still counts when
        # the expected one is among them (qmail_extra_lines lists two failed addresses).
        ok = want["FinalRecipient"].lower() in got
        tally.count("recipient", ok, f"{name}: want {want['FinalRecipient']} got {sorted(got)}")
        if kind == "dsn":
            tally.count("recipient_dsn", ok, name)
        if ok:
            tally.count("permanence", permanent is want["IsHard"], f"{name}: ours={permanent}")
    return tally


def _pct(pair: list[int]) -> str:
    return f"{pair[0]}/{pair[1]} ({100 * pair[0] / pair[1]:.1f}%)" if pair[1] else "n/a"


def run(root: Path) -> Iterator[Tally]:
    """Measure every corpus under ``root``."""
    flufl_names = {
        Path(n).stem for n in json.loads((root / "flufl.bounce/expected.json").read_text())
    }
    yield measure_flufl(root)
    yield measure_bounced(root, flufl_names)
    yield measure_baunsu(root)
    yield measure_mbd(root)


def main(argv: list[str] | None = None) -> int:
    """Print the table; ``--failures`` also lists what failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / ".." / "shared" / "corpora"
    parser.add_argument("corpora", nargs="?", type=Path, default=default)
    parser.add_argument("--failures", action="store_true")
    args = parser.parse_args(argv)
    root = args.corpora / "bounces"
    header = (
        f"{'corpus':<20} {'recipient':<18} {'recipient (DSN)':<18} {'perm/temp':<18} not-a-bounce"
    )
    print(header)
    totals = Tally("all")
    for tally in run(root):
        print(
            f"{tally.name:<20} {_pct(tally.recipient):<18} {_pct(tally.recipient_dsn):<18} "
            f"{_pct(tally.permanence):<18} {_pct(tally.not_bounce)}"
        )
        for measure in ("recipient", "recipient_dsn", "permanence", "not_bounce"):
            for i in range(2):
                getattr(totals, measure)[i] += getattr(tally, measure)[i]
        if args.failures:
            for failure in tally.failures:
                print("   ", failure)
    print(
        f"{'all':<20} {_pct(totals.recipient):<18} {_pct(totals.recipient_dsn):<18} "
        f"{_pct(totals.permanence):<18} {_pct(totals.not_bounce)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
