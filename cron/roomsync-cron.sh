#!/usr/bin/env bash
# Run `roomsync sync` from cron: load an env file, never overlap, log, exit with roomsync's code.
#
#   roomsync-cron.sh [ENV_FILE] [extra `roomsync sync` options...]
#
# ENV_FILE (default /etc/roomsync/roomsync.env) holds KEY=value lines: SIGNALWIRE_SPACE,
# SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, DATABASE_URL, and optionally ROOMSYNC (the
# roomsync executable), ROOMSYNC_LOG (log file) and ROOMSYNC_LOCK (lock file). Keep it mode 600.
# The flock here stops a second cron start on the same host; roomsync's own lock (an advisory
# lock on PostgreSQL) stops overlap across hosts. A skipped run exits 0.
set -uo pipefail

env_file=${1:-/etc/roomsync/roomsync.env}
[ $# -gt 0 ] && shift

if [ ! -r "$env_file" ]; then
    echo "roomsync-cron: cannot read env file $env_file" >&2
    exit 3
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a

roomsync=${ROOMSYNC:-roomsync}
log_file=${ROOMSYNC_LOG:-/var/log/roomsync/sync.log}
lock_file=${ROOMSYNC_LOCK:-/tmp/roomsync-sync.lock}
mkdir -p "$(dirname "$log_file")"

log() {
    while IFS= read -r line; do
        printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"
    done >>"$log_file"
}

exec 9>>"$lock_file"
if ! flock -n 9; then
    echo "roomsync-cron: another run holds $lock_file; skipped" | log
    exit 0
fi

echo "roomsync-cron: sync starting" | log
# roomsync runs in the background so that a SIGTERM/SIGINT sent to this script (systemctl stop,
# Ctrl-C) is passed on to it and its summary still reaches the log; the logger ignores both
# signals and drains to the end.
"$roomsync" sync --json "$@" > >(trap '' INT TERM; log) 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
code=0
wait "$pid" || code=$?
while kill -0 "$pid" 2>/dev/null; do  # wait returned early for a trapped signal
    code=0
    wait "$pid" || code=$?
done
echo "roomsync-cron: sync exited $code" | log
exit "$code"
