"""Measure ``postline bounce classify`` against the real bounce corpora in ``../shared/corpora``.

Usage: ``python bench/corpus_bounces.py [CORPORA_DIR] [--failures]``

Runs the same function the CLI runs (:func:`services.bouncer.cli.classify_bytes`) over every
message with an expected result and prints, per corpus: recipient found correctly, permanent
vs temporary agreement, "not a bounce" recognised, the enhanced status code agreement where
the corpus gives one: ``status`` where the message carries a status (ours is the report's),
``derived`` where it carries none and ours is derived from the reply code and the reason
(the corpus's label is then its own parser's default, e.g. mailbouncedetector's 5.3.0 for
any qmail paragraph without a code), bounce recipients left with class ``unknown`` or
reason ``undefined``, and the reasons found.
None of these corpora labels reasons (sisimai-style), so reason agreement cannot be measured
on them. Last, the in-process classification rate over all their messages (messages/s, by
the wall clock and by CPU time; the best of five rounds of about 0.5 s, each repeating the set).
The corpora are read in place and never copied (see their README for licences). ``bounced``
ships older copies of flufl.bounce's files (``bounced/flufl_bounce``); they are counted once,
under flufl.bounce.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.bouncer.cli import classify_bytes
from shared.bounceclass.rules import load_rules

#: Loaded once, as ``postline bounce classify`` does (not once per message).
TABLE = load_rules()

BOUNCE_KINDS = ("dsn", "bounce")


@dataclass
class Tally:
    """Counts for one corpus: (passed, total) per measure, plus failing files."""

    name: str
    recipient: list[int] = field(default_factory=lambda: [0, 0])
    recipient_dsn: list[int] = field(default_factory=lambda: [0, 0])
    permanence: list[int] = field(default_factory=lambda: [0, 0])
    not_bounce: list[int] = field(default_factory=lambda: [0, 0])
    status: list[int] = field(default_factory=lambda: [0, 0])
    derived: list[int] = field(default_factory=lambda: [0, 0])  # ours derived, not reported
    unknown: list[int] = field(default_factory=lambda: [0, 0])  # class unknown / recipients
    undefined: list[int] = field(default_factory=lambda: [0, 0])  # reason undefined / recipients
    reasons: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def observe(self, results: list[dict[str, Any]]) -> None:
        """Count the class, reason and status of a bounce's recipients."""
        for line in results:
            if line["kind"] not in BOUNCE_KINDS or not line.get("recipient"):
                continue
            self.unknown[1] += 1
            self.unknown[0] += int(line["class"] == "unknown")
            self.undefined[1] += 1
            self.undefined[0] += int(line["reason"] == "undefined")
            self.reasons[line["reason"]] += 1

    def check_status(self, want: str, results: list[dict[str, Any]], recipient: str) -> None:
        """Compare our status for ``recipient`` with the corpus's (``5.1.1`` or ``511``).

        bounced's labels are enhanced codes without dots ("511") or, for some DSNs, the
        reply code of the Diagnostic-Code ("554" for "Status: 5.7.1" with "smtp; 554
        5.7.1 ..."): a three-digit label equal to the recipient's reply code is compared
        with our reply code, not read as 5.5.4."""
        expected = _dotted(want)
        ours = [r for r in results if (r["recipient"] or "").lower() == recipient]
        if not ours:
            self.count("status", False, f"{recipient}: want {expected} ours none")
            return
        line = ours[0]
        if want.isdecimal() and len(want) == 3 and int(want) == line.get("smtp_code"):
            ok = True  # the label is the reply code, and ours is the same
            what = f"{recipient}: want reply {want} ours {line['smtp_code']}"
        else:
            ok = line["delivery_status"] == expected
            what = f"{recipient}: want {expected} ours {line['delivery_status']}"
        measure = "derived" if line.get("status_derived") else "status"
        self.count(measure, ok, what + (" (derived)" if measure == "derived" else ""))

    def count(self, measure: str, ok: bool, what: str) -> None:
        """Add one observation; remember what failed."""
        pair = getattr(self, measure)
        pair[1] += 1
        pair[0] += int(ok)
        if not ok:
            self.failures.append(f"{measure}: {what}")


def _lines(raw: bytes) -> list[dict[str, Any]]:
    return classify_bytes(raw, TABLE)


def _dotted(status: str) -> str:
    # bounced writes enhanced codes without dots: "511" is 5.1.1, "5110" is 5.1.10.
    if "." in status or len(status) < 3:
        return status
    return f"{status[0]}.{status[1]}.{status[2:]}"


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
        tally.observe(results)
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
        tally.observe(results)
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
            for w in want:
                if w.get("status"):
                    tally.check_status(str(w["status"]), results, w["recipient"].lower())
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
        tally.observe(results)
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
        tally.observe(results)
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
            if want.get("status"):
                tally.check_status(want["status"], results, want["FinalRecipient"].lower())
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


def messages(root: Path) -> list[bytes]:
    """Every message of the corpora with an expected result (for the rate)."""
    names = [
        root / "flufl.bounce/data" / n
        for n in json.loads((root / "flufl.bounce/expected.json").read_text())
    ]
    names += [
        root / "bounced" / n
        for n in json.loads((root / "bounced/expected.json").read_text())["expected"]
    ]
    names += [root / "baunsu" / n for n in json.loads((root / "baunsu/expected.json").read_text())]
    names += [
        root / "mailbouncedetector/fixtures" / n
        for n in json.loads((root / "mailbouncedetector/expected.json").read_text())
    ]
    return [path.read_bytes() for path in names if path.is_file()]


@dataclass
class Rate:
    """The in-process rate, in messages/s, of the rounds that were timed."""

    best_wall: float  # the fastest round by the wall clock
    median_wall: float
    best_cpu: float  # the fastest round by this process's CPU time
    repeats: int  # passes over the set in one round
    rounds: int
    seconds: float  # wall time of all timed rounds


def rate(raws: list[bytes], rounds: int, round_seconds: float = 0.5) -> Rate:
    """Messages/s of in-process classification (parse + classify) over ``rounds`` rounds: by
    the wall clock, and by this process's CPU time (steadier on a shared machine, where
    the wall clock also counts the time other processes had the CPU). One pass over the
    corpora takes about 0.1 s, too short to time alone on a shared machine: a round repeats
    the set until it lasts about ``round_seconds`` (the count is taken from one warm pass)."""
    for raw in raws:  # warm up: imports, regex caches
        classify_bytes(raw, TABLE)
    start = time.perf_counter()
    for raw in raws:  # one warm pass: how many make a round
        classify_bytes(raw, TABLE)
    once = time.perf_counter() - start
    repeats = max(1, math.ceil(round_seconds / max(once, 1e-6)))
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            for raw in raws:
                classify_bytes(raw, TABLE)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    done = len(raws) * repeats
    return Rate(
        best_wall=done / min(walls),
        median_wall=done / statistics.median(walls),
        best_cpu=done / min(cpus),
        repeats=repeats,
        rounds=rounds,
        seconds=sum(walls),
    )


def main(argv: list[str] | None = None) -> int:
    """Print the table; ``--failures`` also lists what failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / ".." / "shared" / "corpora"
    parser.add_argument("corpora", nargs="?", type=Path, default=default)
    parser.add_argument("--failures", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of about 0.5 s for the rate (best of)"
    )
    args = parser.parse_args(argv)
    root = args.corpora / "bounces"
    header = (
        f"{'corpus':<20} {'recipient':<18} {'recipient (DSN)':<18} {'perm/temp':<18} "
        f"{'not-a-bounce':<16} {'status':<18} {'derived':<16} {'class unknown':<16} "
        "reason undefined"
    )
    print(header)
    totals = Tally("all")
    measures = (
        "recipient",
        "recipient_dsn",
        "permanence",
        "not_bounce",
        "status",
        "derived",
        "unknown",
    )
    tallies = list(run(root))
    for tally in [*tallies, totals]:
        if tally is totals:
            for other in tallies:
                for measure in (*measures, "undefined"):
                    for i in range(2):
                        getattr(totals, measure)[i] += getattr(other, measure)[i]
                totals.reasons.update(other.reasons)
        print(
            f"{tally.name:<20} {_pct(tally.recipient):<18} {_pct(tally.recipient_dsn):<18} "
            f"{_pct(tally.permanence):<18} {_pct(tally.not_bounce):<16} {_pct(tally.status):<18} "
            f"{_pct(tally.derived):<16} {_pct(tally.unknown):<16} {_pct(tally.undefined)}"
        )
        if args.failures:
            for failure in tally.failures:
                print("   ", failure)
    print("reasons (bounce recipients, all corpora):")
    print("   ", ", ".join(f"{name} {n}" for name, n in totals.reasons.most_common()))
    raws = messages(root)
    speed = rate(raws, args.rounds)
    print(
        f"rate: {speed.best_wall:,.0f} messages/s in process ({len(raws)} messages; best of "
        f"{speed.rounds} rounds of {speed.repeats} passes, {speed.seconds:.1f} s; median "
        f"{speed.median_wall:,.0f} messages/s; by CPU time {speed.best_cpu:,.0f} messages/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
