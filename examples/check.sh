#!/usr/bin/env bash
# Run the orchestrator examples for real against the local stand-in API (python -m etl.fake_api):
#
#   Airflow: `airflow dags test` of roomsync_sync, then of roomsync_backfill (4 mapped shards)
#   Dagster: `dagster job execute` of roomsync_sync_job, then of roomsync_backfill_job
#
# Each runs on a SQLite database of its own, and counts only when the orchestrator says it
# succeeded (exit code, and for Airflow the DAG run's state) and `roomsync status` finds every
# stand-in session stored by it. Any failure exits non-zero.
#
# Airflow and Dagster each get a virtualenv of their own under .venv-examples/ (they need
# different versions of shared libraries), with roomsync installed editable from this checkout;
# a virtualenv is reused while the pins below and roomsync's dependencies are unchanged (a cold
# install takes a few minutes, most of it Airflow's). AIRFLOW_HOME and DAGSTER_HOME are temporary
# directories, removed at the end with the databases and the stand-in.
#
#   bash examples/check.sh            # both
#   bash examples/check.sh airflow    # or dagster: one of them
#
# Environment: ROOMSYNC_EXAMPLES_VENV (default .venv-examples) moves the virtualenvs;
# ROOMSYNC_EXAMPLES_TIMEOUT (default 600) bounds each orchestrator command, in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Pinned: versions that run these examples on Python 3.11 (checked on 2026-12-06).
AIRFLOW_REQUIREMENT="apache-airflow==3.3.2"
DAGSTER_REQUIREMENT="dagster==1.13.29"
SESSIONS=40
venvs=${ROOMSYNC_EXAMPLES_VENV:-$root/.venv-examples}
limit=${ROOMSYNC_EXAMPLES_TIMEOUT:-600}
which=${1:-all}
case $which in all | airflow | dagster) ;; *) echo "usage: $0 [airflow|dagster]" >&2 && exit 2 ;; esac

say() { echo "examples/check.sh: $*" >&2; }
die() {
    say "FAILED: $*"
    exit 1
}

# A virtualenv with REQUIREMENT and roomsync (editable), made once and reused while the stamp
# (the requirement and the hash of pyproject.toml's dependencies) is unchanged.
ensure_venv() {
    local name=$1 requirement=$2 dir=$venvs/$1 stamp
    stamp="$requirement $(sed -n "/^dependencies = \[/,/^]/p" pyproject.toml | sha256sum | cut -c1-16)"
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.roomsync-stamp" 2>/dev/null)" = "$stamp" ]; then
        say "reusing $dir ($requirement)"
        return
    fi
    say "installing $requirement into $dir (a few minutes, once)"
    local began=$SECONDS
    rm -rf "$dir"
    python3 -m venv "$dir"
    timeout 1800 "$dir/bin/pip" install -q "$requirement" -e "$root" || die "cannot install $requirement"
    echo "$stamp" >"$dir/.roomsync-stamp"
    say "installed $requirement in $((SECONDS - began))s"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/roomsync-examples.XXXXXX")
api_pid=
cleanup() {
    if [ -n "$api_pid" ]; then
        kill "$api_pid" 2>/dev/null || true
        wait "$api_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The stand-in API on a free loopback port, from the first virtualenv at hand.
start_api() {
    local python=$1
    "$python" -m etl.fake_api --sessions "$SESSIONS" --project-id example-project \
        --token example-token --ids-file "$work/ids.txt" >"$work/base_url" 2>"$work/api.log" &
    api_pid=$!
    for _ in $(seq 300); do  # up to 60 s: the first line is the base URL
        [ -s "$work/base_url" ] && break
        kill -0 "$api_pid" 2>/dev/null || die "the stand-in API did not start: $(cat "$work/api.log")"
        sleep 0.2
    done
    [ -s "$work/base_url" ] || die "the stand-in API printed no URL within 60 s"
    export SIGNALWIRE_SPACE
    SIGNALWIRE_SPACE=$(head -n1 "$work/base_url")
    export SIGNALWIRE_PROJECT_ID=example-project SIGNALWIRE_API_TOKEN=example-token
    say "stand-in API at $SIGNALWIRE_SPACE serving $SESSIONS sessions"
}

# `roomsync status` of DATABASE_URL: every session stored and COMMAND's last run ok.
expect_stored() {
    local venv=$1 command=$2
    "$venv/bin/roomsync" status --json | "$venv/bin/python" -c '
import json, sys
status, command, expected = json.load(sys.stdin), sys.argv[1], int(sys.argv[2])
run = status["runs"].get(command) or {}
if status["sessions"] != expected or run.get("outcome") != "ok":
    sys.exit("%s of %s sessions stored; last %s: %s" % (status["sessions"], expected, command, run))
' "$command" "$SESSIONS" || die "$command: the database is not as expected ($DATABASE_URL)"
}

run_logged() {  # run_logged NAME COMMAND...: output to a log, shown only on failure
    local name=$1
    shift
    if ! timeout "$limit" "$@" >"$work/$name.log" 2>&1; then
        tail -n 60 "$work/$name.log" >&2
        die "$name: $* exited non-zero (or ran over ${limit}s)"
    fi
}

check_airflow() {
    local venv=$venvs/airflow began=$SECONDS
    export AIRFLOW_HOME=$work/airflow-home
    export AIRFLOW__CORE__DAGS_FOLDER=$AIRFLOW_HOME/dags AIRFLOW__CORE__LOAD_EXAMPLES=False
    mkdir -p "$AIRFLOW__CORE__DAGS_FOLDER"
    cp examples/airflow_dag.py "$AIRFLOW__CORE__DAGS_FOLDER/"
    run_logged airflow-db-migrate "$venv/bin/airflow" db migrate

    export DATABASE_URL=sqlite:///$work/airflow-sync.db
    run_logged airflow-sync "$venv/bin/airflow" dags test roomsync_sync
    expect_dag_run_ok "$venv" roomsync_sync
    expect_stored "$venv" sync

    export DATABASE_URL=sqlite:///$work/airflow-backfill.db
    "$venv/bin/roomsync" db upgrade -q
    run_logged airflow-backfill "$venv/bin/airflow" dags test roomsync_backfill \
        -c "{\"ids_file\": \"$work/ids.txt\"}"
    expect_dag_run_ok "$venv" roomsync_backfill
    expect_stored "$venv" backfill
    say "airflow: roomsync_sync and roomsync_backfill ran ok in $((SECONDS - began))s"
}

expect_dag_run_ok() {  # the newest run of DAG, as Airflow itself recorded it
    local venv=$1 dag=$2
    timeout "$limit" "$venv/bin/airflow" dags list-runs "$dag" -o json 2>/dev/null |
        "$venv/bin/python" -c '
import json, sys
runs = json.loads(sys.stdin.read().strip().splitlines()[-1])
sys.exit(0 if runs and all(run["state"] == "success" for run in runs) else f"runs: {runs}")
' || die "airflow: $dag did not succeed"
}

check_dagster() {
    local venv=$venvs/dagster began=$SECONDS
    export DAGSTER_HOME=$work/dagster-home
    mkdir -p "$DAGSTER_HOME"
    export DATABASE_URL=sqlite:///$work/dagster-sync.db
    run_logged dagster-sync "$venv/bin/dagster" job execute -f examples/dagster_job.py \
        -j roomsync_sync_job
    expect_stored "$venv" sync

    export DATABASE_URL=sqlite:///$work/dagster-backfill.db
    "$venv/bin/roomsync" db upgrade -q
    printf 'ops:\n  roomsync_backfill:\n    config:\n      ids_file: "%s"\n      shard: "0/1"\n' \
        "$work/ids.txt" >"$work/backfill.yaml"
    run_logged dagster-backfill "$venv/bin/dagster" job execute -f examples/dagster_job.py \
        -j roomsync_backfill_job -c "$work/backfill.yaml"
    expect_stored "$venv" backfill
    say "dagster: roomsync_sync_job and roomsync_backfill_job ran ok in $((SECONDS - began))s"
}

started=$SECONDS
[ "$which" = dagster ] || ensure_venv airflow "$AIRFLOW_REQUIREMENT"
[ "$which" = airflow ] || ensure_venv dagster "$DAGSTER_REQUIREMENT"
if [ "$which" = dagster ]; then start_api "$venvs/dagster/bin/python"; else start_api "$venvs/airflow/bin/python"; fi
[ "$which" = dagster ] || check_airflow
[ "$which" = airflow ] || check_dagster
say "ok in $((SECONDS - started))s"
