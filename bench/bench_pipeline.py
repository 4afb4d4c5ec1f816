"""The whole pipeline under SMTP load (``make bench``), and side by side with Postfix
(``make bench-compare``).

    python bench/bench_pipeline.py --kafka 127.0.0.1:29092 [--compare] [--messages 5000]
        [--sessions 20] [--size 5120] [--rcpts 1] [--domains 4] [--new-connection]
        [--rounds 1] [--bus kafka|embedded]
        [--profile all|ingest|signer|deliverer|bouncer|kafka|run]
    python bench/bench_pipeline.py --bulk-backlog 1000 --messages 100 --sessions 2 --pause 0.4
        [--backlog-rate 1200] [--backlog-connections 2]

Postline: four stage processes (``postline ingest|signer|deliverer|bouncer``) on Kafka
(acks=all, transactions), DKIM RSA-2048 signing, VERP, delivering through MX records served by a
loopback DNS server to a sink MX host in its own process (``smtp-sink`` when installed). The
load generator (``bench/load.py``) submits to ingest's relay listener.

``--compare`` runs four systems with the same load, in the same run, alternating round by
round (each round starts with the next system), at every ``--sizes`` size (1 KB and 50 KB by
default), ``--rounds`` rounds (default 3), with the medians and every Postline/Postfix ratio
printed by ``compare.py``:

- ``postline-kafka``: the four stage processes above;
- ``postline-embedded``: one ``postline run`` process on the embedded SQLite bus, with its own
  DNS server and sink;
- ``postfix``: Debian's package (installed if missing, purged again afterwards unless
  ``--keep-postfix``), one private instance configured by this script as a relay on a loopback
  port to the Kafka stack's sink;
- ``postfix-opendkim``: a second private Postfix instance with Debian's ``opendkim`` (installed
  and purged the same way) as its milter, RSA-2048, relaxed/relaxed (``opendkim.py``); the
  sink's count of messages carrying a DKIM-Signature must equal the delivered count.

Reported per system: accepted msg/s, delivered msg/s (recipients received by the sink over
the time from the first submission to the last receipt), accept latency p50/p99 (end of DATA
to 250), accept-to-delivered latency p50/p99 (sink receive time minus accept time, matched by
Message-ID), duplicates at the sink, CPU ms per message per process tree (stages, broker,
sink, Postfix, OpenDKIM) and peak RSS per process. Written to ``bench/results/pipeline.json``
(``compare.json`` with ``--compare``).

``--profile``: in the last round, py-spy each stage's process tree (the signer's signing workers
too) and record the broker JVM with JFR and per-thread CPU (``jfr.py``), all over the same
window; one summary per process in ``bench/results/profile-<name>.txt`` (``all``: the four
stages and ``kafka``). ``--bus embedded`` runs ``postline run`` instead of the four stage
processes; ``--profile run`` samples its whole process tree (its stage processes too) into
``profile-run.txt``.

How one run is measured (the figures, the processes metered, the profilers) is
``measure.py``'s.

``--bulk-backlog N``: the transactional accept-to-delivered latency to one limited domain
alone and behind a backlog of N bulk messages to it (``backlog.py`` describes the scenario);
the two figures are printed and written under ``lanes``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import compare
from bench import opendkim as opendkim_pkg
from bench import postfix as postfix_pkg
from bench.backlog import (
    backlog_env,
    backlog_left,
    lanes_figures,
    print_lanes,
    queue_backlog,
    transactional_spec,
)
from bench.load import LoadSpec
from bench.measure import (
    RESULTS,
    measure,
    postline_roots,
    print_run,
    profilers_for,
    warm_up,
    write_profiles,
)
from bench.profiling import Profiler
from bench.sink import Sink
from bench.stack import SENDER_DOMAIN, STAGES, Stack, StackOptions
from testing.smtpsink import free_port


def load_spec(args: argparse.Namespace, port: int) -> LoadSpec:
    """The load of one run against ``port``."""
    return LoadSpec(
        port=port,
        sessions=args.sessions,
        messages=args.messages,
        size=args.size,
        rcpts=args.rcpts,
        domains=tuple(f"d{i}.bench" for i in range(args.domains)),
        reuse=not args.new_connection,
    )


def stack_options(args: argparse.Namespace, workdir: Path) -> StackOptions:
    """The Postline cluster of this run (one sink host: Postfix relays to the same one)."""
    env = {}
    if args.signer_workers is not None:
        env["POSTLINE__SIGNER__WORKERS"] = str(args.signer_workers)
    if args.log_level:
        env["POSTLINE__LOG__LEVEL"] = json.dumps(args.log_level)
    if args.compression:
        env["POSTLINE__KAFKA__COMPRESSION"] = json.dumps(args.compression)
    if args.bulk_backlog:
        env.update(backlog_env(args.backlog_connections, args.backlog_rate))
    return StackOptions(
        workdir=workdir / "postline",
        kafka=args.kafka,
        domains=tuple(f"d{i}.bench" for i in range(args.domains)),
        env=env,
    )


def embedded(args: argparse.Namespace, options: StackOptions, workdir: Path) -> StackOptions:
    """``options`` as one ``postline run`` on the embedded bus, with ``--run-processes``."""
    options = replace(options, workdir=workdir, bus="embedded")
    if args.run_processes is None:
        return options
    separate = [name for name in args.run_processes.split(",") if name]
    env = {**options.env, "POSTLINE__RUNTIME__SEPARATE_PROCESSES": json.dumps(separate)}
    return replace(options, env=env)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start everything, run the rounds, stop everything; the results document."""
    if args.compare:
        return run_compare(args, workdir)
    runs: list[dict[str, Any]] = []
    options = stack_options(args, workdir)
    if args.bus == "embedded":
        options = embedded(args, options, workdir / "embedded")
    with Stack(options) as stack:
        sink = stack.sinks[0]
        roots = postline_roots(stack, args.kafka)
        postline_spec = load_spec(args, stack.ports.relay)
        if args.bulk_backlog:
            return run_backlog(args, stack, postline_spec, roots)
        warm_up(postline_spec, sink, None)
        for round_no in range(args.rounds):
            profilers: list[Profiler] = []
            if args.profile and round_no == args.rounds - 1:
                # raw stacks and the recording stay in the work directory: not kept
                profilers = profilers_for(args.profile, stack, args.kafka, workdir)
            runs.append(measure("postline", postline_spec, sink, roots, None, profilers=profilers))
            print_run(runs[-1])
            write_profiles(runs[-1].pop("profiles", {}))
        sink_kind = sink.kind
    return {"runs": runs, "sink": sink_kind}


@dataclass(frozen=True)
class System:
    """One system of ``--compare``: where the load goes, where its mail arrives, what to meter,
    and (Postfix) how to tell its queue is empty."""

    port: int
    sink: Sink
    roots: dict[str, int]
    done: Callable[[], bool] | None = None


def run_compare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """``--compare``: the four systems of ``compare.SYSTEMS`` at every ``--sizes`` size,
    alternating round by round; each system's processes are stopped by PID at the end."""
    # Every stop is registered before its start; ExitStack runs each of them even when one
    # fails, and no SIGTERM interrupts them.
    with ExitStack() as cleanup:
        try:
            return compare_systems(args, workdir, cleanup)
        finally:
            ignore_sigterm()


def compare_systems(args: argparse.Namespace, workdir: Path, cleanup: ExitStack) -> dict[str, Any]:
    """Start the four systems (their stops on ``cleanup``), warm each up, run the rounds."""
    runs: list[dict[str, Any]] = []
    kafka_options = stack_options(args, workdir)
    embedded_options = embedded(args, kafka_options, workdir / "embedded")
    kafka_stack = cleanup.enter_context(Stack(kafka_options))
    embedded_stack = cleanup.enter_context(Stack(embedded_options))
    sink = kafka_stack.sinks[0]  # both Postfix instances relay to it, one at a time
    loadgen = {"sink": sink.pid, "loadgen": os.getpid()}
    relay = postfix_pkg.PostfixRelay(workdir / "postfix", free_port(), sink.host, sink.port)
    cleanup.callback(relay.stop)
    postfix_roots = {"postfix": relay.start(), **loadgen}
    signer = opendkim_pkg.OpenDkim(
        workdir, SENDER_DOMAIN, free_port() if args.milter_socket == "inet" else None
    )
    cleanup.callback(signer.stop)
    dkim_roots = {"opendkim": signer.start()}
    signed_relay = postfix_pkg.PostfixRelay(
        workdir / "postfix-opendkim", free_port(), sink.host, sink.port, signer.milter
    )
    cleanup.callback(signed_relay.stop)
    dkim_roots = {"postfix": signed_relay.start(), **dkim_roots, **loadgen}
    systems = {
        "postline-kafka": System(
            kafka_stack.ports.relay, sink, postline_roots(kafka_stack, args.kafka)
        ),
        "postline-embedded": System(
            embedded_stack.ports.relay,
            embedded_stack.sinks[0],
            postline_roots(embedded_stack, args.kafka),
        ),
        "postfix": System(relay.port, sink, postfix_roots, relay.queue_empty),
        "postfix-opendkim": System(signed_relay.port, sink, dkim_roots, signed_relay.queue_empty),
    }
    base = load_spec(args, 0)
    for name, system in systems.items():
        print(f"warming up {name}...", flush=True)
        spec = replace(base, port=system.port, size=args.sizes[0])
        warm_up(spec, system.sink, system.done)
    for size in args.sizes:
        for round_no in range(args.rounds):
            for name in compare.order(round_no):
                system = systems[name]
                spec = replace(base, port=system.port, size=size)
                figures = measure(name, spec, system.sink, system.roots, system.done)
                figures["size"] = size
                figures["round"] = round_no
                figures["dkim_signed"] = system.sink.dkim_signed()
                runs.append(figures)
                print_run(figures)
    return {"runs": runs, "sink": sink.kind}


def run_backlog(
    args: argparse.Namespace, stack: Stack, spec: LoadSpec, roots: dict[str, int]
) -> dict[str, Any]:
    """The ``--bulk-backlog`` scenario (``backlog.py``): transactional alone, then behind
    the backlog."""
    sink = stack.sinks[0]
    transactional = transactional_spec(spec, args.pause)
    warm_up(replace(transactional, pause=0.0), sink, None)
    alone = measure("transactional", transactional, sink, roots, None)
    print_run(alone)
    backlog = queue_backlog(stack, spec, args.bulk_backlog, timeout=600)
    print(
        f"\nbulk backlog queued: {backlog['bulk_accepted']} accepted and signed in "
        f"{backlog['bulk_signed_after_s']} s",
        flush=True,
    )
    behind = measure(
        "transactional+backlog", transactional, sink, roots, None, amid_other_mail=True
    )
    backlog["left_after_run"] = backlog_left(sink, backlog["bulk_ids"])
    print_run(behind)
    lanes = lanes_figures(alone, behind, backlog)
    return {"runs": [alone, behind], "sink": sink.kind, "lanes": lanes}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per system (``--compare`` has its own: ``compare.py``)."""
    out: dict[str, Any] = {}
    for system in ("postline", "postfix"):
        mine = [r for r in runs if r["system"] == system]
        if mine:
            out[system] = {
                key: sorted(r[key] for r in mine)[len(mine) // 2]
                for key in (
                    "accepted_per_s",
                    "delivered_per_s",
                    "accept_p50_ms",
                    "accept_p99_ms",
                    "e2e_p50_ms",
                    "e2e_p99_ms",
                )
            }
    return out


def print_summary(s: dict[str, Any]) -> None:
    """The comparison table."""
    keys = (
        "accepted_per_s",
        "delivered_per_s",
        "accept_p50_ms",
        "accept_p99_ms",
        "e2e_p50_ms",
        "e2e_p99_ms",
    )
    systems = [x for x in ("postline", "postfix") if x in s]
    print("\n" + f"{'median of rounds':<18}" + "".join(f"{x:>12}" for x in systems))
    for key in keys:
        print(f"{key:<18}" + "".join(f"{s[x][key]:>12}" for x in systems))


def parse_args() -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", default=os.environ.get("POSTLINE_TEST_KAFKA", "127.0.0.1:29092"))
    parser.add_argument("--compare", action="store_true", help="run Postfix too, in the same run")
    parser.add_argument(
        "--bus",
        choices=["kafka", "embedded"],
        default="kafka",
        help="without --compare: the four stage processes on Kafka, or postline run",
    )
    parser.add_argument(
        "--milter-socket",
        choices=["unix", "inet"],
        default="unix",
        help="--compare: OpenDKIM on a unix socket (Debian's default) or a loopback port",
    )
    parser.add_argument(
        "--keep-postfix", action="store_true", help="do not purge what we installed (both)"
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages per round")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5 * 1024)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[1024, 50 * 1024],
        help="--compare: message sizes in bytes, comma-separated (default 1024,51200)",
    )
    parser.add_argument("--rcpts", type=int, default=1, help="recipients per message")
    parser.add_argument("--domains", type=int, default=4, help="recipient domains")
    parser.add_argument("--new-connection", action="store_true", help="one connection per message")
    parser.add_argument("--rounds", type=int, help="default 1 (3 with --compare)")
    parser.add_argument("--signer-workers", type=int, help="signer.workers (default: product's 0)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--compression", choices=["none", "gzip", "lz4", "zstd"])
    parser.add_argument(
        "--run-processes",
        metavar="STAGES",
        help="runtime.separate_processes of postline run, comma-separated "
        "(empty: one process; default: the product's)",
    )
    parser.add_argument(
        "--profile",
        choices=["all", *STAGES, "kafka", "run"],
        help="in the last round: py-spy the stage(s), JFR the broker (all: every one; "
        "run: postline run's process tree, with --bus embedded)",
    )
    parser.add_argument(
        "--bulk-backlog",
        type=int,
        default=0,
        help="transactional latency alone and behind this many bulk messages (backlog.py)",
    )
    parser.add_argument(
        "--backlog-rate", type=float, default=1200, help="messages/minute to the backlog domain"
    )
    parser.add_argument(
        "--backlog-connections", type=int, default=2, help="connections to the backlog domain"
    )
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds each session waits between messages"
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    parser.add_argument(
        "--output", type=Path, help="default: bench/results/pipeline.json (compare.json)"
    )
    return parser.parse_args()


def signed_all(run: dict[str, Any]) -> bool:
    """Every message the sink received in ``run`` carried a DKIM-Signature (or the sink
    cannot tell: the aiosmtpd sink keeps no message text)."""
    return run.get("dkim_signed") in (None, run["delivered_messages"])


def on_sigterm(*_: object) -> None:
    """SIGTERM (e.g. ``timeout``) unwinds like Ctrl-C: every process is stopped by its PID
    and the packages installed here are purged; a second SIGTERM cannot cut that short."""
    ignore_sigterm()
    sys.exit(143)


def ignore_sigterm() -> None:
    """From now on SIGTERM does nothing: cleanup (stopping processes, purging packages) is
    under way and must not be cut short; it ends soon anyway."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_in_workdir(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run` in a temporary work directory (kept with ``--keep-workdir``)."""
    if args.keep_workdir:
        tmp = tempfile.mkdtemp(prefix="postline-bench-")
        print(f"work directory (kept): {tmp}", flush=True)
        return run(args, Path(tmp))
    with tempfile.TemporaryDirectory(prefix="postline-bench-") as tmp:
        return run(args, Path(tmp))


def report(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """Print the summary of the runs; the summary."""
    if args.compare:
        s = compare.summarise(result["runs"])
        print(compare.table(s))
        return s
    s = summary(result["runs"])
    if "lanes" in result:
        print_lanes(result["lanes"])
    else:
        print_summary(s)
    return s


def main() -> int:
    """Run, print and save."""
    args = parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    if args.rounds is None:
        args.rounds = 3 if args.compare else 1
    if args.output is None:
        args.output = RESULTS / ("compare.json" if args.compare else "pipeline.json")
    with ExitStack() as installed_here:
        try:
            for package in (postfix_pkg, opendkim_pkg) if args.compare else ():
                if not package.installed():
                    print(f"installing {package.__name__} (purged at the end)...", flush=True)
                    if not args.keep_postfix:
                        installed_here.callback(package.purge)  # first: a failed install too
                    package.install()
            result = run_in_workdir(args)
        finally:
            ignore_sigterm()  # before the purges
    s = report(args, result)
    RESULTS.mkdir(exist_ok=True)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    doc = {
        "params": params,
        "sink": result["sink"],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_after": os.getloadavg(),
        "summary": s,
        "runs": result["runs"],
    }
    if "lanes" in result:
        doc["lanes"] = result["lanes"]
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {args.output}; load average {os.getloadavg()}")
    complete = all(
        r["complete"]
        and not r["duplicate_recipients"]
        and not r["restarted"]
        and (r["system"] != "postfix-opendkim" or signed_all(r))
        for r in result["runs"]
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
