# Shared by the deploy/local/<component>.sh scripts: the port, the pidfile, stopping by PID,
# installing a Debian package whose own service must not start.
# The sourcing script defines log, die, PIDFILE and pid_is_ours PID (is that PID our server?),
# so a recycled PID or another user's server is never taken for ours nor signalled.
# shellcheck shell=bash

pid_from_file() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid=$(tr -dc '0-9' <"$PIDFILE")
    [[ -n "$pid" ]] || return 1
    printf '%s\n' "$pid"
}

running_pid() {
    local pid
    pid=$(pid_from_file) || return 1
    pid_is_ours "$pid" || return 1
    printf '%s\n' "$pid"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stop_by_pid WHAT GRACE: SIGTERM our server, SIGKILL it after GRACE seconds, remove the
# pidfile. Stopping what is not running (no pidfile, a stale one) is not an error.
stop_by_pid() {
    local what="$1" grace="$2" pid
    if ! pid=$(pid_from_file); then
        log "not running (no pidfile)"
        return 0
    fi
    if ! pid_is_ours "$pid"; then
        log "not running (stale pidfile for pid $pid)"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping $what pid $pid ..."
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still alive after ${grace}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    rm -f "$PIDFILE"
    log "stopped"
}

# port_from_env NAME DEFAULT: the port in $NAME (else DEFAULT), or die naming the variable.
port_from_env() {
    local port="${!1:-$2}"
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "bad $1: $port"
    fi
    printf '%s
' "$port"
}

# apt_install_service SERVICE PACKAGE...: install PACKAGEs with apt-get (sudo when not root)
# without letting dpkg start SERVICE (policy-rc.d; the packaged service would take the
# default ports), retrying once after `apt-get update`, and stop SERVICE in case an init
# system started it anyway. We run our own instance on a private port.
apt_install_service() {
    local service="$1"
    shift
    command -v apt-get >/dev/null || die "$service not found and no apt-get to install it"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "$service not found; install it: apt-get install $*"
        sudo=(sudo)
    fi
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        created=1
    fi
    log "installing Debian's $* ..."
    local status=0
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >&2; then
        "${sudo[@]}" apt-get update -q >&2
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$@" >&2 || status=$?
    fi
    if ((created)); then
        "${sudo[@]}" rm -f "$policy"
    fi
    ((status == 0)) || die "apt-get could not install $*"
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
    elif command -v service >/dev/null; then
        "${sudo[@]}" service "$service" stop >/dev/null 2>&1 || true
    fi
}
