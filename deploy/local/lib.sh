# Shared by the deploy/local/<component>.sh scripts: the pidfile, the port, stopping by PID.
# The sourcing script defines log, PIDFILE and pid_is_ours PID (is that PID our server?),
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
