#!/usr/bin/env bash
# Run `roomsync sync` from cron or systemd: load an env file, never overlap, exit with roomsync's
# code.
#
#   roomsync-cron.sh [ENV_FILE|-] [extra `roomsync sync` options...]
#
# ENV_FILE (default /etc/roomsync/roomsync.env) holds KEY=value lines: SIGNALWIRE_SPACE,
# SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, DATABASE_URL, and optionally ROOMSYNC (the
# roomsync executable), ROOMSYNC_LOG (a log file) and ROOMSYNC_LOCK (the lock file). Keep it
# mode 600. "-" loads no file: the environment is already set (systemd's EnvironmentFile=).
#
# The lock: ROOMSYNC_LOCK, else sync.lock in $STATE_DIRECTORY (systemd's StateDirectory=), else
# in ${XDG_STATE_HOME:-$HOME/.local/state}/roomsync; never in a world-writable directory such as
# /tmp, where another user could take it or plant a link in its place. A lock that cannot be
# opened is an error (exit 3); a lock held by another run skips this one (exit 0). This flock
# stops a second start on the same host; roomsync's own lock (an advisory lock on PostgreSQL)
# stops overlap across hosts.
#
# Output: with ROOMSYNC_LOG set, timestamped lines are appended to that file and nothing is
# printed. Without it, output goes to stdout/stderr: under systemd (JOURNAL_STREAM set) or on a
# terminal every run's output is shown (the journal keeps it); under cron a run that succeeds
# stays silent and a run that fails prints its output, so cron mails failures only.
set -uo pipefail

fail() {
    echo "roomsync-cron: $*" >&2
    exit 3
}

env_file=${1:-/etc/roomsync/roomsync.env}
[ $# -gt 0 ] && shift

if [ "$env_file" != - ]; then
    [ -r "$env_file" ] || fail "cannot read env file $env_file"
    set -a
    # shellcheck disable=SC1090
    . "$env_file"
    set +a
fi

roomsync=${ROOMSYNC:-roomsync}
log_file=${ROOMSYNC_LOG:-}

if [ -n "${ROOMSYNC_LOCK:-}" ]; then
    lock_file=$ROOMSYNC_LOCK
elif [ -n "${STATE_DIRECTORY:-}" ]; then
    lock_file=${STATE_DIRECTORY%%:*}/sync.lock
elif [ -n "${XDG_STATE_HOME:-}" ] || [ -n "${HOME:-}" ]; then
    lock_file=${XDG_STATE_HOME:-$HOME/.local/state}/roomsync/sync.lock
else
    fail "no place for the lock: set ROOMSYNC_LOCK, STATE_DIRECTORY, XDG_STATE_HOME or HOME"
fi
lock_dir=$(dirname "$lock_file")
mkdir -p -m 700 "$lock_dir" 2>/dev/null || fail "cannot create the lock's directory $lock_dir"
if [ -n "$(find "$lock_dir" -maxdepth 0 -perm -0002 2>/dev/null)" ]; then
    fail "refusing a lock in world-writable $lock_dir: set ROOMSYNC_LOCK to a private directory"
fi

if [ -n "$log_file" ]; then
    mode=file
    { mkdir -p "$(dirname "$log_file")" && : >>"$log_file"; } 2>/dev/null ||
        fail "cannot write log file $log_file"
elif [ -n "${JOURNAL_STREAM:-}" ] || [ -t 2 ]; then
    mode=stream
else
    mode=quiet
    output=$(mktemp "$lock_dir/output.XXXXXX") || fail "cannot create a file in $lock_dir"
    trap 'rm -f "$output"' EXIT
fi

log() {  # timestamped lines from stdin, appended to the log file
    while IFS= read -r line; do
        printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"
    done >>"$log_file"
}

say() {  # one line of the wrapper's own
    case $mode in
        file) echo "$1" | log ;;
        quiet) echo "$1" >>"$output" ;;
        stream) echo "$1" >&2 ;;
    esac
}

{ exec 9>>"$lock_file"; } 2>/dev/null || fail "cannot open lock file $lock_file"
if ! flock -n 9; then
    say "roomsync-cron: another run holds $lock_file; skipped"
    exit 0
fi

say "roomsync-cron: sync starting"
# roomsync runs in the background so that a SIGTERM/SIGINT sent to this script (systemctl stop,
# Ctrl-C) is passed on to it and its summary is still written; the logger ignores both signals
# and drains to the end.
case $mode in
    file) "$roomsync" sync --json "$@" > >(trap '' INT TERM; log) 2>&1 & ;;
    quiet) "$roomsync" sync --json "$@" >>"$output" 2>&1 & ;;
    stream) "$roomsync" sync --json "$@" & ;;
esac
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
code=0
wait "$pid" || code=$?
while kill -0 "$pid" 2>/dev/null; do  # wait returned early for a trapped signal
    code=0
    wait "$pid" || code=$?
done
say "roomsync-cron: sync exited $code"
if [ "$mode" = quiet ] && [ "$code" -ne 0 ]; then
    cat "$output" >&2
fi
exit "$code"
