#!/usr/bin/env bash
# Run a private PostgreSQL on 127.0.0.1 for tests, benchmarks and local development (the
# reporting store, issue 16), the way deploy/local/redis.sh runs Redis: no Docker, nothing
# written into the work tree, a fresh throwaway cluster on every `up`.
#
# The server comes from Debian (`apt-get install postgresql`, as root) when initdb and pg_ctl
# are not found (Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH), with a
# policy-rc.d in place so dpkg starts no PostgreSQL service, which is then disabled: the only
# PostgreSQL this script leaves running is the private one it started. PostgreSQL refuses to
# run as root: run as root, the cluster runs as POSTLINE_POSTGRES_USER.
#
# Usage: deploy/local/postgres.sh {install|up|down|status|restart|logs}
#
# Environment (all optional):
#   POSTLINE_POSTGRES_PORT     TCP port on 127.0.0.1                 (25432)
#   POSTLINE_POSTGRES_RUN      run dir (data, socket, log, pid)      (see below)
#   POSTLINE_POSTGRES_TIMEOUT  seconds to wait for readiness         (60)
#   POSTLINE_POSTGRES_USER     user the server runs as, when root    (postgres, else nobody)
#   POSTLINE_POSTGRES_BIN      directory of initdb, pg_ctl, psql     (newest /usr/lib/postgresql/*/bin, else PATH)
# The run dir is $HOME/.cache/postline/postgres/run-$PORT, or /var/tmp/postline-postgres-$PORT
# for root (the server's user cannot reach root's home).
#
# The superuser role `postline` owns the database `postline`; connections from loopback and
# the socket are trusted (no password). On success `up` prints
# `dsn=postgresql://postline@127.0.0.1:PORT/postline` as its last line; `down` stops the server
# and removes its data.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=$(port_from_env POSTLINE_POSTGRES_PORT 25432)
if ((EUID == 0)); then
    RUN_DIR="${POSTLINE_POSTGRES_RUN:-/var/tmp/postline-postgres-$PORT}"
else
    RUN_DIR="${POSTLINE_POSTGRES_RUN:-$HOME/.cache/postline/postgres/run-$PORT}"
fi
TIMEOUT="${POSTLINE_POSTGRES_TIMEOUT:-60}"
RUN_USER="${POSTLINE_POSTGRES_USER:-}"
BIN_DIR="${POSTLINE_POSTGRES_BIN:-}"

ROLE=postline
DATABASE=postline
# Written by this script from postmaster.pid's first line (that file has seven more lines,
# which lib.sh's pid_from_file would read as digits of the PID).
PIDFILE="$RUN_DIR/postgres.pid"
LOGFILE="$RUN_DIR/postgres.log"
DATA_DIR="$RUN_DIR/data"
SOCKET_DIR="$RUN_DIR/socket"
DSN="postgresql://$ROLE@127.0.0.1:$PORT/$DATABASE"

# ------------------------------------------------------------- install ----

# The directory holding initdb and pg_ctl: POSTLINE_POSTGRES_BIN, else the newest Debian
# version's, else wherever PATH has them. Prints nothing and fails when there is none.
find_bin_dir() {
    if [[ -n "$BIN_DIR" ]]; then
        [[ -x "$BIN_DIR/initdb" && -x "$BIN_DIR/pg_ctl" ]] || return 1
        printf '%s\n' "$BIN_DIR"
        return 0
    fi
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
        printf '%s\n' "$dir"
        return 0
    fi
    local initdb
    initdb=$(command -v initdb) && command -v pg_ctl >/dev/null || return 1
    dirname "$(readlink -f "$initdb")"
}

ensure_installed() {
    if BIN_DIR=$(find_bin_dir); then
        return 0
    fi
    [[ -z "${POSTLINE_POSTGRES_BIN:-}" ]] || die "no initdb and pg_ctl in POSTLINE_POSTGRES_BIN=$POSTLINE_POSTGRES_BIN"
    # The package's postinst creates the distribution's cluster `main` (port 5432); it is never
    # started (policy-rc.d, then the service is disabled) and this script does not use it.
    apt_install_service postgresql postgresql
    BIN_DIR=$(find_bin_dir) || die "initdb and pg_ctl still not found after installing postgresql"
}

# ------------------------------------------------------------- the user ---

# as_server CMD...: run CMD as the user the server runs as (root: RUN_USER via setpriv, from
# / so no tool complains about a working directory it cannot read; otherwise ourselves).
as_server() {
    if ((EUID == 0)); then
        (cd / && setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups \
            env HOME="$DATA_DIR" "$@")
    else
        "$@"
    fi
}

choose_user() {
    ((EUID == 0)) || return 0
    if [[ -z "$RUN_USER" ]]; then
        if id postgres >/dev/null 2>&1; then RUN_USER=postgres; else RUN_USER=nobody; fi
    fi
    id "$RUN_USER" >/dev/null 2>&1 || die "user $RUN_USER missing (set POSTLINE_POSTGRES_USER)"
    [[ "$(id -u "$RUN_USER")" != 0 ]] || die "PostgreSQL cannot run as root: set POSTLINE_POSTGRES_USER"
}

# ------------------------------------------------------------- config -----

write_config() {
    # Appended to initdb's postgresql.conf: a later line wins over the defaults above it.
    cat >>"$DATA_DIR/postgresql.conf" <<EOF

# ---- deploy/local/postgres.sh: a private, throwaway PostgreSQL for tests ----
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
# Tests create a database each and pools of their own; several suites may share this server.
max_connections = 300
# Durability is worth nothing here (a crashed test cluster is thrown away and made again by
# the next 'up'), and flushing every commit to disk would make tests slower by the disk's latency.
fsync = off
synchronous_commit = off
full_page_writes = off
# Times are UTC whatever the machine's zone, so no test depends on where it runs.
timezone = 'UTC'
log_timezone = 'UTC'
EOF
    # Trust without a password: the cluster is private (our own data dir and socket dir),
    # listens on loopback only, holds nothing but test data and is removed by 'down'; any
    # password would be a constant in this file anyway.
    cat >"$DATA_DIR/pg_hba.conf" <<EOF
# Generated by deploy/local/postgres.sh -- a private, loopback-only, throwaway cluster.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
}

# ------------------------------------------------------------ lifecycle ----

# True if PID is alive and is our postmaster (guards against recycled PIDs and other
# clusters): a postgres process whose working directory is our data dir.
pid_is_ours() {
    local pid="$1"
    [[ -r "/proc/$pid/cmdline" ]] || { kill -0 "$pid" 2>/dev/null; return; }
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'postgres' || return 1
    [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f "$DATA_DIR")" ]]
}

ready() {
    "$BIN_DIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DATABASE" -t 2 \
        >/dev/null 2>&1
}

wait_ready() {
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        ready && return 0
        sleep 0.1
    done
    log "PostgreSQL not accepting connections on 127.0.0.1:$PORT after ${TIMEOUT}s"
    return 1
}

psql_admin() {
    "$BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$ROLE" "$@"
}

prepare_run_dir() {
    mkdir -p "$RUN_DIR"
    if ((EUID == 0)); then
        # /var/tmp is shared: never use a run dir someone else made (a planted symlink in it
        # would have root write through it). It stays root's; the server's user owns only
        # the data and socket dirs in it, so root never writes where that user could plant one.
        [[ -O "$RUN_DIR" && ! -L "$RUN_DIR" ]] || die "run dir $RUN_DIR is not ours; remove it or set POSTLINE_POSTGRES_RUN"
        chmod 0755 "$RUN_DIR"
        as_server test -x "$RUN_DIR" ||
            die "user $RUN_USER cannot reach run dir $RUN_DIR (a parent is private); set POSTLINE_POSTGRES_RUN"
    fi
}

do_up() {
    choose_user
    prepare_run_dir
    exec 9>"$RUN_DIR/.lock"
    flock 9
    local pid
    if pid=$(running_pid); then
        BIN_DIR=$(find_bin_dir) || die "server pid $pid runs, but initdb and pg_ctl are gone"
        if wait_ready; then
            log "already running (pid $pid)"
            echo "dsn=$DSN"
            return 0
        fi
        die "process $pid is alive but not accepting connections on 127.0.0.1:$PORT; run '$0 down' first"
    fi
    rm -f "$PIDFILE"
    if port_open "$PORT"; then
        die "port $PORT is already in use by another process"
    fi
    ensure_installed
    local t0
    t0=$(date +%s%N)
    # A fresh cluster every time: whatever a crashed run left is test data.
    rm -rf "$DATA_DIR" "$SOCKET_DIR"
    mkdir -m 0700 "$DATA_DIR"
    # Any local user may use the socket, as any may connect to the loopback port.
    mkdir -m 0755 "$SOCKET_DIR"
    : >"$LOGFILE"
    if ((EUID == 0)); then
        chown "$RUN_USER:" "$DATA_DIR" "$SOCKET_DIR" "$LOGFILE"
    fi
    # The bootstrap superuser is `postline`. --no-sync: a throwaway cluster need not be on disk.
    # Locale C: byte order for text, the same on every machine.
    as_server "$BIN_DIR/initdb" -D "$DATA_DIR" -U "$ROLE" --auth=trust --encoding=UTF8 \
        --locale=C --no-sync >>"$LOGFILE" 2>&1 9>&- || {
        tail -n 30 "$LOGFILE" >&2
        die "initdb failed"
    }
    write_config
    if ((EUID == 0)); then
        chown "$RUN_USER:" "$DATA_DIR/postgresql.conf" "$DATA_DIR/pg_hba.conf"
    fi
    # pg_ctl detaches the server (its output goes to the log); fd 9 (the lock) stays here.
    as_server "$BIN_DIR/pg_ctl" start -D "$DATA_DIR" -l "$LOGFILE" -w -t "$TIMEOUT" \
        </dev/null >/dev/null 2>&1 9>&- || {
        tail -n 30 "$LOGFILE" >&2
        do_down >/dev/null 2>&1 || true
        die "PostgreSQL failed to start"
    }
    head -n 1 "$DATA_DIR/postmaster.pid" >"$PIDFILE"
    pid=$(pid_from_file) || die "PostgreSQL did not write postmaster.pid"
    if ! wait_ready; then
        tail -n 30 "$LOGFILE" >&2
        do_down >/dev/null 2>&1 || true
        die "PostgreSQL did not come up on 127.0.0.1:$PORT"
    fi
    psql_admin -d postgres -c "CREATE DATABASE $DATABASE OWNER $ROLE" 9>&- ||
        die "could not create the database $DATABASE"
    local version
    version=$(psql_admin -d "$DATABASE" -At -c 'SHOW server_version' 9>&-)
    log "PostgreSQL $version up (pid $pid, run dir $RUN_DIR) in $((($(date +%s%N) - t0) / 1000000)) ms"
    echo "dsn=$DSN"
}

do_down() {
    choose_user
    local pid
    if pid=$(running_pid); then
        log "stopping PostgreSQL pid $pid ..."
        # Fast shutdown: sessions are disconnected, nothing is waited for (the data goes next).
        if BIN_DIR=$(find_bin_dir) &&
            as_server "$BIN_DIR/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t 30 >/dev/null 2>&1; then
            # pg_ctl returns once postmaster.pid is gone, a moment before the process is.
            local deadline=$((SECONDS + 10))
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
            rm -f "$PIDFILE"
            log "stopped"
        else
            log "pg_ctl stop failed; signalling pid $pid"
            stop_by_pid PostgreSQL 10
        fi
    else
        # Reports "not running" and removes a stale pidfile.
        stop_by_pid PostgreSQL 10
    fi
    rm -rf "$DATA_DIR" "$SOCKET_DIR"
}

do_status() {
    local pid
    if pid=$(running_pid); then
        if BIN_DIR=$(find_bin_dir) && ready; then
            echo "running pid=$pid dsn=$DSN run_dir=$RUN_DIR"
            return 0
        fi
        echo "unresponsive pid=$pid dsn=$DSN (not accepting connections)"
        return 1
    fi
    echo "not running (port $PORT)"
    return 1
}

usage() {
    sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
}

cmd="${1:-}"
case "$cmd" in
    install) ensure_installed; log "$BIN_DIR" ;;
    up) do_up ;;
    down) do_down ;;
    restart) do_down; do_up ;;
    status) do_status ;;
    logs) tail -n "${2:-100}" "$LOGFILE" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
