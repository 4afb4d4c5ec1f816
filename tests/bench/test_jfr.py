"""The broker profile's pure parts (``bench/jfr.py``): reading ``jcmd Thread.print`` and
``jfr print`` text, grouping threads by role, the CPU split between two snapshots and the
sample counts, on hand-made text shaped like the JDK 17 tools' output."""

from __future__ import annotations

from bench.jfr import (
    OTHER,
    HotMethods,
    JavaThread,
    Sample,
    cpu_split,
    hot_methods,
    parse_samples,
    parse_thread_print,
    summarise,
    thread_group,
)

THREAD_PRINT = "\n".join(
    [
        "25977:",
        "Full thread dump OpenJDK 64-Bit Server VM (17.0.15+6-Debian-1deb12u1 mixed mode):",
        "",
        '"main" #1 prio=5 os_prio=0 cpu=1891.94ms elapsed=680.62s tid=0x00007f1f50019060'
        " nid=0x657c waiting on condition  [0x00007f1f55dfe000]",
        "   java.lang.Thread.State: WAITING (parking)",
        "\tat jdk.internal.misc.Unsafe.park(java.base@17.0.15/Native Method)",
        "",
        '"data-plane-kafka-request-handler-0" #74 daemon prio=5 os_prio=0 cpu=3479.27ms'
        " elapsed=675.45s tid=0x00007f1f50f74e30 nid=0x6666 waiting on condition  [0x00007f1e]",
        '"data-plane-kafka-network-thread-1-PLAINTEXT-PLAINTEXT-0" #48 prio=5 os_prio=0'
        " cpu=3459.00ms elapsed=675.16s tid=0x00007f1f5063cf00 nid=0x6680 runnable  [0x7f1e]",
        '"GC Thread#0" os_prio=0 cpu=1062.73ms elapsed=680.61s tid=0x00007f1f50055f30'
        " nid=0x657d runnable",
        '"C2 CompilerThread0" #7 daemon prio=9 os_prio=0 cpu=38868.73ms elapsed=680.49s'
        " tid=0x00007f1f5014db10 nid=0x658e runnable  [0x0000000000000000]",
        "",
        "JNI global refs: 24, weak refs: 0",
    ]
)


def test_parse_thread_print_reads_every_thread_line_by_os_id() -> None:
    threads = parse_thread_print(THREAD_PRINT)
    assert set(threads) == {0x657C, 0x6666, 0x6680, 0x657D, 0x658E}
    assert threads[0x6666] == JavaThread(0x6666, "data-plane-kafka-request-handler-0", 3479.27)
    assert threads[0x657D].name == "GC Thread#0"  # VM threads have no "#n"


def test_thread_groups_by_kafka_and_hotspot_names() -> None:
    assert thread_group("data-plane-kafka-network-thread-1-PLAINTEXT-PLAINTEXT-0").startswith(
        "network"
    )
    assert thread_group("data-plane-kafka-socket-acceptor-PLAINTEXT-PLAINTEXT-29092").startswith(
        "network"
    )
    assert thread_group("data-plane-kafka-request-handler-3").startswith("request handlers")
    assert thread_group("TxnMarkerSenderThread-1").startswith("transactions")
    assert thread_group("group-coordinator-event-processor-2") == "group coordinator"
    assert thread_group("kafka-scheduler-1").startswith("log")
    assert thread_group("ReplicaFetcherThread-0-2") == "replication"
    assert thread_group("GC Thread#1") == "GC (G1)"
    assert thread_group("G1 Conc#0") == "GC (G1)"
    assert thread_group("C1 CompilerThread0") == "JIT compiler"
    assert thread_group("kafka-1-raft-io-thread").startswith("KRaft")
    assert thread_group("something-new") == OTHER


def test_cpu_split_is_the_difference_per_group() -> None:
    before = {
        1: JavaThread(1, "data-plane-kafka-request-handler-0", 100.0),
        2: JavaThread(2, "data-plane-kafka-request-handler-1", 50.0),
        3: JavaThread(3, "GC Thread#0", 10.0),
        4: JavaThread(4, "kafka-scheduler-0", 5.0),
    }
    after = {
        1: JavaThread(1, "data-plane-kafka-request-handler-0", 160.0),
        2: JavaThread(2, "data-plane-kafka-request-handler-1", 70.0),
        3: JavaThread(3, "GC Thread#0", 10.0),  # idle: no entry
        5: JavaThread(5, "G1 Conc#0", 7.5),  # started in between: from zero
        4: JavaThread(4, "ExpirationReaper-1-Fetch", 9.0),  # id reused by another thread
    }
    split = cpu_split(before, after)
    assert split == {
        "request handlers (produce, fetch, commit)": 80.0,
        "purgatory (ExpirationReaper)": 9.0,
        "GC (G1)": 7.5,
    }


JFR_PRINT = """\
jdk.ExecutionSample {
  startTime = 12:20:01.100
  sampledThread = "data-plane-kafka-request-handler-0" (javaThreadId = 74)
  state = "STATE_RUNNABLE"
  stackTrace = [
    java.util.zip.CRC32C.updateBytes(int, byte[], int, int) line: 160
    org.apache.kafka.common.utils.Crc32C.compute(ByteBuffer, int, int) line: 71
    kafka.server.KafkaApis.handleProduceRequest(RequestChannel$Request, RequestLocal) line: 600
    kafka.server.KafkaApis.handle(RequestChannel$Request, RequestLocal) line: 180
  ]
}

jdk.ExecutionSample {
  startTime = 12:20:01.110
  sampledThread = "data-plane-kafka-request-handler-1" (javaThreadId = 75)
  state = "STATE_RUNNABLE"
  stackTrace = [
    java.util.zip.CRC32C.updateBytes(int, byte[], int, int) line: 160
    kafka.server.KafkaApis.handleProduceRequest(RequestChannel$Request, RequestLocal) line: 600
    kafka.server.KafkaApis.handle(RequestChannel$Request, RequestLocal) line: 180
    ...
  ]
}

jdk.ExecutionSample {
  startTime = 12:20:01.120
  sampledThread = "data-plane-kafka-network-thread-1-PLAINTEXT-PLAINTEXT-0" (javaThreadId = 48)
  state = "STATE_RUNNABLE"
  stackTrace = [
    sun.nio.ch.SocketDispatcher.write0(FileDescriptor, long, int)
    org.apache.kafka.common.network.Selector.poll(long) line: 470
    org.apache.kafka.common.network.Selector.poll(long) line: 470
  ]
}
"""


def test_parse_samples_reads_thread_and_frames_top_first() -> None:
    samples = list(parse_samples(JFR_PRINT.splitlines()))
    assert len(samples) == 3
    assert samples[0] == Sample(
        "data-plane-kafka-request-handler-0",
        (
            "java.util.zip.CRC32C.updateBytes",
            "org.apache.kafka.common.utils.Crc32C.compute",
            "kafka.server.KafkaApis.handleProduceRequest",
            "kafka.server.KafkaApis.handle",
        ),
    )
    assert samples[1].frames[-1] == "kafka.server.KafkaApis.handle"  # "..." is no frame
    assert samples[2].thread.startswith("data-plane-kafka-network-thread")


def test_hot_methods_counts_self_inclusive_and_thread_groups() -> None:
    hot = hot_methods(parse_samples(JFR_PRINT.splitlines()))
    assert hot.total == 3
    assert hot.own.most_common(1) == [("java.util.zip.CRC32C.updateBytes", 2)]
    assert hot.own["sun.nio.ch.SocketDispatcher.write0"] == 1
    assert hot.inclusive["kafka.server.KafkaApis.handle"] == 2
    # a recursive frame counts once per sample
    assert hot.inclusive["org.apache.kafka.common.network.Selector.poll"] == 1
    assert hot.groups["request handlers (produce, fetch, commit)"] == 2


def test_summary_shows_shares_of_cpu_and_of_samples() -> None:
    hot = HotMethods(total=4)
    hot.own["a.B.c"] = 3
    hot.inclusive["a.B.c"] = 4
    hot.groups["network (socket reads/writes)"] = 4
    cpu = {"GC (G1)": 250.0, "network (socket reads/writes)": 750.0}
    text = summarise(cpu, 2.0, hot)
    assert "broker CPU over 2.0 s: 1.00 s (0.50 cores)" in text
    assert "  75.0%        750 ms  network (socket reads/writes)" in text
    assert "  25.0%        250 ms  GC (G1)" in text
    assert "  75.0%  a.B.c" in text
    assert " 100.0%  a.B.c" in text


def test_summary_of_no_samples_does_not_divide_by_zero() -> None:
    text = summarise({}, 1.0, HotMethods())
    assert "JFR execution samples (Java code only): 0" in text
