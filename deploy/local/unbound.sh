#!/usr/bin/env bash
# Run a private validating DNS resolver (Debian's unbound) on 127.0.0.1 for DANE (RFC 7672):
# the deliverer trusts the AD bit only from a validating resolver of its own on loopback
# (deliverer.dane), and this is one for local development, the way redis.sh runs Redis.
#
# The tests start their own unbound per test module (testing/unbound.py) with a trust anchor
# for the signed test zone and nothing else; `make test` only calls `install` here.
#
# unbound comes from Debian (`apt-get install unbound dns-root-data`, as root) when it is
# not installed; the distribution's own unbound service is kept from starting (policy-rc.d)
# and disabled, so the only unbound this script leaves running is the private one it started.
#
# Usage: deploy/local/unbound.sh {install|up|down|status|restart|logs}
#
# Environment (all optional):
#   POSTLINE_UNBOUND_PORT     UDP and TCP port on 127.0.0.1          (25353)
#   POSTLINE_UNBOUND_RUN      run dir (config, log, pid)            ($HOME/.cache/postline/unbound/run-$PORT)
#   POSTLINE_UNBOUND_TIMEOUT  seconds to wait for readiness          (20)
#   POSTLINE_UNBOUND_ANCHOR   the root trust anchor file             (/usr/share/dns/root.key)
#   UNBOUND                   the binary                             (unbound on PATH or /usr/sbin)
#
# `up` resolves from the root servers and validates against the root trust anchor (a
# static file, never rewritten: no RFC 5011 probing). On success it prints
# `nameserver=127.0.0.1:PORT` as its last line: put it in deliverer.nameservers.
set -euo pipefail

log() { printf 'unbound.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${POSTLINE_UNBOUND_PORT:-25353}"
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    die "bad POSTLINE_UNBOUND_PORT: $PORT"
fi
RUN_DIR="${POSTLINE_UNBOUND_RUN:-$HOME/.cache/postline/unbound/run-$PORT}"
TIMEOUT="${POSTLINE_UNBOUND_TIMEOUT:-20}"
ANCHOR="${POSTLINE_UNBOUND_ANCHOR:-/usr/share/dns/root.key}"

PIDFILE="$RUN_DIR/unbound.pid"
LOGFILE="$RUN_DIR/unbound.log"
CONF="$RUN_DIR/unbound.conf"

# unbound lives in /usr/sbin, which is not on every user's PATH.
find_unbound() {
    if [[ -n "${UNBOUND:-}" ]]; then
        command -v "$UNBOUND"
    else
        command -v unbound || { [[ -x /usr/sbin/unbound ]] && echo /usr/sbin/unbound; }
    fi
}

# ------------------------------------------------------------- install ----

# dns-root-data: the root trust anchor `up` validates against (a Recommends of unbound).
ensure_installed() {
    if find_unbound >/dev/null && [[ -r "$ANCHOR" || "$ANCHOR" != /usr/share/dns/root.key ]]; then
        return 0
    fi
    command -v apt-get >/dev/null || die "unbound not found and no apt-get to install it"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "unbound not found; install it: apt-get install unbound"
        sudo=(sudo)
    fi
    # policy-rc.d: dpkg starts no unbound service (the package's would take port 53).
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        created=1
    fi
    log "installing Debian's unbound ..."
    local status=0
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends unbound dns-root-data >&2; then
        "${sudo[@]}" apt-get update -q >&2
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends unbound dns-root-data >&2 || status=$?
    fi
    if ((created)); then
        "${sudo[@]}" rm -f "$policy"
    fi
    ((status == 0)) || die "apt-get could not install unbound"
    # In case an init system started it anyway.
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        "${sudo[@]}" systemctl disable --now unbound >/dev/null 2>&1 || true
    elif command -v service >/dev/null; then
        "${sudo[@]}" service unbound stop >/dev/null 2>&1 || true
    fi
    find_unbound >/dev/null || die "unbound still not found after install"
}

# ------------------------------------------------------------ lifecycle ----

# True if PID is alive and is our unbound (guards against recycled PIDs and other unbounds):
# its command line names our config file.
pid_is_ours() {
    local pid="$1"
    [[ -r "/proc/$pid/cmdline" ]] || { kill -0 "$pid" 2>/dev/null; return; }
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "unbound -c $CONF"
}

# unbound answers localhost. from its built-in local zone, so readiness needs no upstream.
query_ok() {
    local python
    python="$(dirname "${BASH_SOURCE[0]}")/../../.venv/bin/python"
    [[ -x "$python" ]] || python=python3
    "$python" - "$PORT" <<'EOF' 2>/dev/null
import socket, struct, sys
query = struct.pack("!HHHHHH", 0x5053, 0x0100, 1, 0, 0, 0) + b"\x09localhost\x00\x00\x01\x00\x01"
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.settimeout(1)
    sock.sendto(query, ("127.0.0.1", int(sys.argv[1])))
    reply = sock.recv(512)
sys.exit(0 if reply[:2] == b"\x50\x53" and reply[3] & 0x0F == 0 else 1)
EOF
}

wait_ready() {
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        query_ok && return 0
        sleep 0.1
    done
    log "unbound not answering on 127.0.0.1:$PORT after ${TIMEOUT}s"
    return 1
}

write_config() {
    cat >"$CONF" <<EOF
# Generated by deploy/local/unbound.sh -- a private validating resolver for DANE.
server:
    interface: 127.0.0.1
    port: $PORT
    access-control: 127.0.0.0/8 allow
    do-ip6: no
    do-daemonize: yes
    username: ""
    chroot: ""
    directory: "$RUN_DIR"
    pidfile: "$PIDFILE"
    logfile: "$LOGFILE"
    use-syslog: no
    verbosity: 1
    val-log-level: 2
    module-config: "validator iterator"
    trust-anchor-file: "$ANCHOR"
remote-control:
    control-enable: no
EOF
}

do_up() {
    mkdir -p "$RUN_DIR"
    [[ -O "$RUN_DIR" && ! -L "$RUN_DIR" ]] || die "run dir $RUN_DIR is not ours; remove it or set POSTLINE_UNBOUND_RUN"
    exec 9>"$RUN_DIR/.lock"
    flock 9
    local pid
    if pid=$(running_pid); then
        if wait_ready; then
            log "already running (pid $pid)"
            echo "nameserver=127.0.0.1:$PORT"
            return 0
        fi
        die "process $pid is alive but not answering on 127.0.0.1:$PORT; run '$0 down' first"
    fi
    rm -f "$PIDFILE"
    if port_open "$PORT"; then
        die "port $PORT is already in use by another process"
    fi
    ensure_installed
    [[ -r "$ANCHOR" ]] || die "no root trust anchor at $ANCHOR (Debian's dns-root-data; or set POSTLINE_UNBOUND_ANCHOR)"
    local unbound
    unbound=$(find_unbound)
    : >"$LOGFILE"
    write_config
    "$(dirname "$unbound")/unbound-checkconf" "$CONF" >&2 || die "unbound-checkconf rejected $CONF"
    local t0
    t0=$(date +%s%N)
    # do-daemonize: unbound detaches and writes its pidfile itself; fd 9 (the lock) stays here.
    "$unbound" -c "$CONF" </dev/null >>"$LOGFILE" 2>&1 9>&- || {
        tail -n 30 "$LOGFILE" >&2
        die "unbound failed to start"
    }
    if ! wait_ready; then
        tail -n 30 "$LOGFILE" >&2
        do_down >/dev/null 2>&1 || true
        die "unbound did not come up on 127.0.0.1:$PORT"
    fi
    pid=$(pid_from_file) || die "unbound did not write its pidfile"
    log "$("$unbound" -V | head -n 1) up (pid $pid, run dir $RUN_DIR) in $((($(date +%s%N) - t0) / 1000000)) ms"
    echo "nameserver=127.0.0.1:$PORT"
}

do_down() {
    stop_by_pid unbound 10
}

do_status() {
    local pid
    if pid=$(running_pid); then
        if query_ok; then
            echo "running pid=$pid nameserver=127.0.0.1:$PORT run_dir=$RUN_DIR"
            return 0
        fi
        echo "unresponsive pid=$pid nameserver=127.0.0.1:$PORT"
        return 1
    fi
    echo "not running (port $PORT)"
    return 1
}

usage() {
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
}

cmd="${1:-}"
case "$cmd" in
    install) ensure_installed; log "$(find_unbound)" ;;
    up) do_up ;;
    down) do_down ;;
    restart) do_down; do_up ;;
    status) do_status ;;
    logs) tail -n "${2:-100}" "$LOGFILE" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
