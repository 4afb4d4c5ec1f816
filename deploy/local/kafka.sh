#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, combined broker+controller)
# on 127.0.0.1 for tests and local development -- no Docker needed.
#
# The broker jars come from Maven Central via `mvn` and are cached outside the
# repository; nothing is written into the work tree.
#
# Usage: deploy/local/kafka.sh {fetch|up|down|status|restart|logs}
#        deploy/local/kafka.sh {cluster-up|cluster-down|cluster-status}
#        deploy/local/kafka.sh {node-start|node-stop|node-pid|node-logs} N   (N = 1, 2, 3)
#
# Cluster mode runs three KRaft nodes (broker + controller in one process each, as the prod
# overlay's Strimzi node pool does) on 127.0.0.1:BASE, BASE+100 and BASE+200, with
# replication 3 and min.insync.replicas 2 as defaults, for tests/cluster. It is independent
# of the single broker: both may run at once. node-* act on one node of the running cluster
# (node-start keeps the node's data: a restart after kill -9 or node-stop).
#
# Environment (all optional):
#   POSTLINE_KAFKA_VERSION    Kafka version to run            (default below)
#   POSTLINE_KAFKA_CACHE      jar cache root                  ($HOME/.cache/postline/kafka)
#   POSTLINE_KAFKA_PORT       PLAINTEXT client port           (29092; controller = port+1)
#   POSTLINE_KAFKA_RUN        run dir (config, data, log, pid) ($CACHE/run-$PORT)
#   POSTLINE_KAFKA_HEAP_OPTS  JVM heap flags                  (-Xms256m -Xmx1g)
#   POSTLINE_KAFKA_TIMEOUT    seconds to wait for readiness   (90)
#   JAVA                      java binary                     (java on PATH)
#   POSTLINE_KAFKA_CLUSTER_PORT       first node's client port (29192; controller = port+1)
#   POSTLINE_KAFKA_CLUSTER_RUN        cluster run dir          ($CACHE/cluster-$CLUSTER_PORT)
#   POSTLINE_KAFKA_CLUSTER_HEAP_OPTS  JVM heap flags per node  (-Xms128m -Xmx384m)
#
# On success `up` prints `bootstrap=127.0.0.1:PORT` as its last line, `cluster-up`
# `bootstrap=127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
set -euo pipefail

# Newest Kafka verified against aiokafka 0.14.0 (idempotent + transactional
# producer, read_committed group consumer, 30 MiB records, admin client).
DEFAULT_KAFKA_VERSION="4.4.0"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${POSTLINE_KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}"
CACHE_ROOT="${POSTLINE_KAFKA_CACHE:-$HOME/.cache/postline/kafka}"
PORT="${POSTLINE_KAFKA_PORT:-29092}"
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65534)); then
    die "bad POSTLINE_KAFKA_PORT: $PORT"
fi
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad POSTLINE_KAFKA_VERSION: $VERSION"
CONTROLLER_PORT=$((PORT + 1))
RUN_DIR="${POSTLINE_KAFKA_RUN:-$CACHE_ROOT/run-$PORT}"
HEAP_OPTS="${POSTLINE_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
TIMEOUT="${POSTLINE_KAFKA_TIMEOUT:-90}"
JAVA="${JAVA:-java}"

VERSION_DIR="$CACHE_ROOT/$VERSION"
LIBS="$VERSION_DIR/libs"
MARKER="$VERSION_DIR/.fetched"
PIDFILE="$RUN_DIR/kafka.pid"
LOGFILE="$RUN_DIR/kafka.log"
DATA_DIR="$RUN_DIR/data"
PROPS="$RUN_DIR/server.properties"
LOG4J2_CONF="$RUN_DIR/log4j2.properties"
LOG4J1_CONF="$RUN_DIR/log4j.properties"
BOOTSTRAP="127.0.0.1:$PORT"


# ---------------------------------------------------------------- fetch ----

# 3.x wants reload4j (log4j 1.x API); 4.x moved to log4j2.
is_kafka3() { [[ "$VERSION" == 3.* ]]; }

write_pom() {
    local pom="$1" logging
    if is_kafka3; then
        # Kafka 3.x logs through the log4j 1.x API: reload4j + its slf4j binding.
        logging='
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>'
    else
        # Kafka 4.x logs through log4j2. slf4j-api 2.x (a direct dependency, so
        # it wins over the 1.7.x that Kafka pulls in) + the log4j2 provider.
        logging='
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>'
    fi
    # kafka_2.13 holds kafka.Kafka and kafka.tools.StorageTool; kafka-server and
    # kafka-storage are listed explicitly so their versions cannot drift.
    # (kafka-tools is deliberately not fetched: it drags in Connect/Jetty.)
    cat >"$pom" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>postline.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>$VERSION</version></dependency>$logging
  </dependencies>
</project>
EOF
}

do_fetch() {
    if [[ -f "$MARKER" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (needed to fetch Kafka $VERSION jars)"
    mkdir -p "$VERSION_DIR"
    # Serialise concurrent fetches of the same version.
    exec 8>"$VERSION_DIR/.lock"
    flock 8
    if [[ -f "$MARKER" ]]; then
        exec 8>&-
        return 0
    fi
    log "fetching Apache Kafka $VERSION jars with mvn into $LIBS ..."
    local t0 tmp
    t0=$(date +%s)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/postline-kafka-fetch.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    write_pom "$tmp/pom.xml"
    rm -rf "$LIBS" "$LIBS.partial"
    if ! mvn -B -q -f "$tmp/pom.xml" \
        dependency:copy-dependencies \
        -DincludeScope=runtime \
        -DoutputDirectory="$LIBS.partial" >"$tmp/mvn.log" 2>&1; then
        tail -n 40 "$tmp/mvn.log" >&2
        rm -rf "$LIBS.partial"
        die "mvn could not fetch Kafka $VERSION"
    fi
    if [[ ! -f "$LIBS.partial/kafka_2.13-$VERSION.jar" ]]; then
        rm -rf "$LIBS.partial"
        die "kafka_2.13-$VERSION.jar missing after fetch"
    fi
    mv "$LIBS.partial" "$LIBS"
    printf 'kafka %s fetched %s\n' "$VERSION" "$(date -u +%FT%TZ)" >"$MARKER"
    rm -rf "$tmp"
    trap - EXIT
    exec 8>&-
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $(($(date +%s) - t0))s"
}

# ------------------------------------------------------------ lifecycle ----

# True if PID is alive and is our Kafka JVM (guards against recycled PIDs).
pid_is_ours() {
    local pid="$1"
    [[ -r "/proc/$pid/cmdline" ]] || { kill -0 "$pid" 2>/dev/null; return; }
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $PROPS"
}

# Readiness = the broker logged that it started AND the client port accepts TCP. Only the
# log written since byte LOG_SINCE counts (a restarted cluster node appends to its log).
LOG_SINCE=0
broker_ready() {
    # grep -c reads to the end: with -q, tail could die of SIGPIPE and fail the pipeline.
    local started
    started=$(tail -c "+$((LOG_SINCE + 1))" "$LOGFILE" 2>/dev/null | grep -c 'Kafka Server started' || true)
    ((started > 0)) && port_open "$PORT"
}

wait_ready() {
    local pid="$1" deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if broker_ready; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker process $pid exited during startup"
            return 1
        fi
        sleep 0.25
    done
    log "broker not ready after ${TIMEOUT}s"
    return 1
}

print_log_tail() {
    if [[ -f "$LOGFILE" ]]; then
        log "---- last 60 lines of $LOGFILE ----"
        tail -n 60 "$LOGFILE" >&2
        log "----"
    fi
}

write_config() {
    write_single_props
    write_log_configs
}

write_single_props() {
    cat >"$PROPS" <<EOF
# Generated by deploy/local/kafka.sh -- single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR

# Small machine: few threads.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1

# Single node: replication factor 1 everywhere, fast group/txn coordinators.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true

# Large records (message bodies travel through Kafka).
message.max.bytes=67108864
replica.fetch.max.bytes=67108864
replica.fetch.response.max.bytes=134217728
fetch.max.bytes=134217728
socket.request.max.bytes=134217728

log.cleaner.dedupe.buffer.size=33554432
EOF
}

write_log_configs() {
    # log4j2 (Kafka 4.x)
    cat >"$LOG4J2_CONF" <<'EOF'
status = warn
name = postline-kafka
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
# A broker failover makes these log every retry (a GiB an hour in the fault tests).
logger.markers.name = kafka.coordinator.transaction.TransactionMarkerRequestCompletionHandler
logger.markers.level = WARN
logger.replicamanager.name = kafka.server.ReplicaManager
logger.replicamanager.level = WARN
EOF

    # log4j 1.x / reload4j (Kafka 3.x)
    cat >"$LOG4J1_CONF" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.kafka.coordinator.transaction.TransactionMarkerRequestCompletionHandler=WARN
log4j.logger.kafka.server.ReplicaManager=WARN
EOF
}

java_opts() {
    # shellcheck disable=SC2206
    local heap=($HEAP_OPTS)
    JOPTS=(
        "${heap[@]}"
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$LOG4J2_CONF"
        -Dlog4j.configuration="file:$LOG4J1_CONF"
        -Dkafka.logs.dir="$RUN_DIR"
        -cp "$LIBS/*"
    )
}

# Start kafka.Kafka on $PROPS in the background; prints its PID once the pidfile has it.
launch_broker() {
    rm -f "$PIDFILE"
    # setsid: own session, so the broker outlives the calling shell/test runner.
    # The inner shell records its own PID, then execs java (same PID).
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$1"; shift; exec nohup "$@"' _ "$PIDFILE" \
        "$JAVA" "${JOPTS[@]}" kafka.Kafka "$PROPS" \
        >>"$LOGFILE" 2>&1 </dev/null 9>&- 8>&- &
    local _
    for _ in $(seq 1 100); do
        [[ -s "$PIDFILE" ]] && break
        sleep 0.05
    done
    pid_from_file || die "broker did not write its pidfile"
    echo "$VERSION" >"$RUN_DIR/version"
}

random_cluster_id() {
    # 16 random bytes, URL-safe base64 without padding = a Kafka Uuid string.
    # One id in 64 starts with '-', which kafka-storage's argument parser takes
    # for an option ("--cluster-id: expected one argument"); Kafka's own
    # random-uuid draws again in that case, and so do we.
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
        [[ $id != -* ]] && break
    done
    echo "$id"
}

do_up() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/.lock"
    flock 9

    local pid
    if pid=$(running_pid); then
        if broker_ready || wait_ready "$pid"; then
            log "already running (pid $pid, Kafka $(cat "$RUN_DIR/version" 2>/dev/null || echo "?"), data kept)"
            echo "bootstrap=$BOOTSTRAP"
            return 0
        fi
        print_log_tail
        die "process $pid is alive but the broker is not answering on $BOOTSTRAP; run '$0 down' first"
    fi
    rm -f "$PIDFILE"
    if port_open "$PORT" || port_open "$CONTROLLER_PORT"; then
        die "port $PORT or $CONTROLLER_PORT is already in use by another process"
    fi

    do_fetch
    command -v "$JAVA" >/dev/null || die "java not found"

    # Fresh start: wipe old data so tests begin clean.
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    : >"$LOGFILE"
    write_config
    local JOPTS
    java_opts

    local t0 cluster_id
    t0=$(date +%s%N)
    cluster_id=$(random_cluster_id)
    if ! "$JAVA" "${JOPTS[@]}" kafka.tools.StorageTool format \
            -t "$cluster_id" -c "$PROPS" >>"$LOGFILE" 2>&1 </dev/null 9>&-; then
        print_log_tail
        die "formatting KRaft storage failed"
    fi

    pid=$(launch_broker)

    if ! wait_ready "$pid"; then
        print_log_tail
        do_down >/dev/null 2>&1 || true
        die "Kafka $VERSION failed to start on $BOOTSTRAP"
    fi
    log "Kafka $VERSION up (pid $pid, run dir $RUN_DIR) in $((($(date +%s%N) - t0) / 1000000)) ms"
    echo "bootstrap=$BOOTSTRAP"
}

do_down() {
    stop_by_pid broker 30
}

do_status() {
    local pid
    if pid=$(running_pid); then
        if port_open "$PORT"; then
            echo "running pid=$pid version=$(cat "$RUN_DIR/version" 2>/dev/null || echo "?") bootstrap=$BOOTSTRAP run_dir=$RUN_DIR"
            return 0
        fi
        echo "starting/unresponsive pid=$pid bootstrap=$BOOTSTRAP (port not answering)"
        return 1
    fi
    echo "not running (port $PORT)"
    return 1
}

# -------------------------------------------------------------- cluster ----
# Three KRaft nodes, each broker + controller in one JVM (the prod overlay's dual-role pool),
# sharing one cluster id and a static controller quorum. Node N's variables are set by
# select_node N, so the single-broker helpers (pidfile, readiness, stop) work per node.

CLUSTER_PORT="${POSTLINE_KAFKA_CLUSTER_PORT:-29192}"
if ! [[ "$CLUSTER_PORT" =~ ^[0-9]+$ ]] || ((CLUSTER_PORT < 1 || CLUSTER_PORT > 65334)); then
    die "bad POSTLINE_KAFKA_CLUSTER_PORT: $CLUSTER_PORT"
fi
CLUSTER_DIR="${POSTLINE_KAFKA_CLUSTER_RUN:-$CACHE_ROOT/cluster-$CLUSTER_PORT}"
CLUSTER_HEAP_OPTS="${POSTLINE_KAFKA_CLUSTER_HEAP_OPTS:--Xms128m -Xmx384m}"
NODES=(1 2 3)

node_port() { echo $((CLUSTER_PORT + ($1 - 1) * 100)); }

select_node() {
    local node="$1"
    [[ "$node" =~ ^[123]$ ]] || die "no such node: '$node' (nodes are 1, 2, 3)"
    NODE="$node"
    PORT=$(node_port "$node")
    CONTROLLER_PORT=$((PORT + 1))
    RUN_DIR="$CLUSTER_DIR/node-$node"
    PIDFILE="$RUN_DIR/kafka.pid"
    LOGFILE="$RUN_DIR/kafka.log"
    DATA_DIR="$RUN_DIR/data"
    PROPS="$RUN_DIR/server.properties"
    LOG4J2_CONF="$RUN_DIR/log4j2.properties"
    LOG4J1_CONF="$RUN_DIR/log4j.properties"
    BOOTSTRAP="127.0.0.1:$PORT"
    HEAP_OPTS="$CLUSTER_HEAP_OPTS"
}

cluster_bootstrap() {
    local node out=()
    for node in "${NODES[@]}"; do out+=("127.0.0.1:$(node_port "$node")"); done
    local IFS=,
    echo "${out[*]}"
}

write_node_props() {
    local voters=() node
    for node in "${NODES[@]}"; do voters+=("$node@127.0.0.1:$(($(node_port "$node") + 1))"); done
    local IFS=,
    cat >"$PROPS" <<EOF
# Generated by deploy/local/kafka.sh -- node $NODE of a three-node KRaft test cluster.
process.roles=broker,controller
node.id=$NODE
controller.quorum.voters=${voters[*]}
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR

# Small machine: few threads.
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1

# What the prod overlay's Strimzi Kafka sets: every write on 2 of 3 replicas before it is
# acknowledged, transactions and offsets replicated like data, and a replica that is not in
# sync never becomes leader (that would drop acknowledged records).
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
share.coordinator.state.topic.num.partitions=1
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true

# Large records (message bodies travel through Kafka).
message.max.bytes=67108864
replica.fetch.max.bytes=67108864
replica.fetch.response.max.bytes=134217728
fetch.max.bytes=134217728
socket.request.max.bytes=134217728

log.cleaner.dedupe.buffer.size=16777216
EOF
}

# Start node $NODE (variables from select_node) on its existing data and wait until it serves.
start_node() {
    local pid
    if pid=$(running_pid); then
        log "node $NODE already running (pid $pid)"
        return 0
    fi
    if port_open "$PORT" || port_open "$CONTROLLER_PORT"; then
        die "port $PORT or $CONTROLLER_PORT is already in use by another process"
    fi
    local JOPTS
    java_opts
    LOG_SINCE=$(stat -c %s "$LOGFILE" 2>/dev/null || echo 0)
    pid=$(launch_broker)
    log "node $NODE starting (pid $pid) on $BOOTSTRAP"
}

wait_node() {
    local pid
    pid=$(pid_from_file) || die "node $NODE has no pidfile"
    if ! wait_ready "$pid"; then
        print_log_tail
        die "node $NODE did not start on $BOOTSTRAP"
    fi
}

# A paused (SIGSTOP) node takes no SIGTERM until continued: continue it first.
signal_node() {
    local sig="$1" pid
    pid=$(running_pid) || return 0
    kill -CONT "$pid" 2>/dev/null || true
    kill "-$sig" "$pid" 2>/dev/null || true
}

do_cluster_up() {
    mkdir -p "$CLUSTER_DIR"
    exec 9>"$CLUSTER_DIR/.lock"
    flock 9
    local node running=0
    for node in "${NODES[@]}"; do
        select_node "$node"
        if running_pid >/dev/null; then running=$((running + 1)); fi
    done
    if ((running == ${#NODES[@]})); then
        for node in "${NODES[@]}"; do select_node "$node"; wait_node; done
        log "cluster already running (data kept)"
        echo "bootstrap=$(cluster_bootstrap)"
        return 0
    fi
    ((running == 0)) || die "part of the cluster is running; run '$0 cluster-down' first"

    do_fetch
    command -v "$JAVA" >/dev/null || die "java not found"
    local t0 cluster_id JOPTS
    t0=$(date +%s%N)
    cluster_id=$(random_cluster_id)
    for node in "${NODES[@]}"; do
        select_node "$node"
        if port_open "$PORT" || port_open "$CONTROLLER_PORT"; then
            die "port $PORT or $CONTROLLER_PORT is already in use by another process"
        fi
        # Fresh start: wipe old data so tests begin clean.
        rm -rf "$DATA_DIR"
        mkdir -p "$DATA_DIR"
        : >"$LOGFILE"
        write_node_props
        write_log_configs
        java_opts
        if ! "$JAVA" "${JOPTS[@]}" kafka.tools.StorageTool format \
                -t "$cluster_id" -c "$PROPS" >>"$LOGFILE" 2>&1 </dev/null 9>&-; then
            print_log_tail
            die "formatting KRaft storage of node $node failed"
        fi
    done
    # All at once: a node's broker starts only once a quorum of controllers (2 of 3) is up.
    for node in "${NODES[@]}"; do select_node "$node"; start_node; done
    for node in "${NODES[@]}"; do
        select_node "$node"
        local pid
        pid=$(pid_from_file) || die "node $node has no pidfile"
        if ! wait_ready "$pid"; then
            print_log_tail
            do_cluster_down >/dev/null 2>&1 || true
            die "Kafka $VERSION cluster failed to start (node $node)"
        fi
    done
    log "Kafka $VERSION cluster up (3 nodes, run dir $CLUSTER_DIR) in $((($(date +%s%N) - t0) / 1000000)) ms"
    echo "bootstrap=$(cluster_bootstrap)"
}

# Every node at once (stopping them one by one would leave the last without a controller
# quorum, and its controlled shutdown would wait for one until the grace runs out).
do_cluster_down() {
    local node pid pids=()
    for node in "${NODES[@]}"; do
        select_node "$node"
        if pid=$(running_pid); then
            log "stopping node $node pid $pid ..."
            signal_node TERM
            pids+=("$pid")
        else
            rm -f "$PIDFILE"
        fi
    done
    local deadline=$((SECONDS + 30))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    done
    for node in "${NODES[@]}"; do
        select_node "$node"
        if pid=$(running_pid); then
            log "node $node still alive after 30s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        rm -f "$PIDFILE"
    done
    log "cluster stopped"
}

do_cluster_status() {
    local node pid status=0
    for node in "${NODES[@]}"; do
        select_node "$node"
        if pid=$(running_pid) && port_open "$PORT"; then
            echo "node $node running pid=$pid bootstrap=$BOOTSTRAP"
        else
            echo "node $node not running (port $PORT)"
            status=1
        fi
    done
    return $status
}

# SIGTERM (a controlled shutdown: leadership moves away first), SIGKILL after 60 s.
do_node_stop() {
    local pid
    if ! pid=$(running_pid); then
        log "node $NODE not running"
        return 0
    fi
    log "stopping node $NODE pid $pid ..."
    signal_node TERM
    local deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "node $NODE still alive after 60s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PIDFILE"
    log "node $NODE stopped"
}

node_arg() {
    [[ $# -ge 2 ]] || die "usage: $0 $1 N (N = 1, 2, 3)"
    select_node "$2"
    [[ -f "$PROPS" ]] || die "node $NODE was never set up; run '$0 cluster-up' first"
}

usage() {
    sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
}

cmd="${1:-}"
case "$cmd" in
    fetch) do_fetch; log "Kafka $VERSION jars in $LIBS" ;;
    up) do_up ;;
    down) do_down ;;
    restart) do_down; do_up ;;
    status) do_status ;;
    logs) tail -n "${2:-100}" "$LOGFILE" ;;
    cluster-up) do_cluster_up ;;
    cluster-down) do_cluster_down ;;
    cluster-status) do_cluster_status ;;
    node-start) node_arg "$@"; do_fetch; start_node; wait_node ;;
    node-stop) node_arg "$@"; do_node_stop ;;
    node-pid) node_arg "$@"; running_pid || die "node $NODE is not running" ;;
    node-logs) node_arg "$@"; tail -n "${3:-100}" "$LOGFILE" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
