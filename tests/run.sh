#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: the one test command README.md names.
# Installs what the tests need (Debian's chromium for the HTML report test, when root and
# missing), a virtualenv with roomsync and its test extras, then lint, format and type checks,
# and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing Debian's chromium for the HTML report test" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict etl
.venv/bin/python -m pytest -n "${ROOMSYNC_TEST_WORKERS:-4}" "$@"
