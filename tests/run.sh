#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: the one test command README.md names.
# Installs what the tests need, then runs lint, format and type checks, and pytest:
#   - one system package, Debian's chromium (headless, for the HTML report test's screenshot),
#     only when it is missing, we are root and apt-get exists. On a terminal it asks first;
#     without one (CI) it installs. ROOMSYNC_SKIP_SYSTEM_PACKAGES=1 never installs it (that
#     test is then skipped, except under CI).
#   - a virtualenv .venv with roomsync (editable) and its test extras (pyproject.toml).
# Arguments go to pytest; ROOMSYNC_TEST_WORKERS sets pytest-xdist's workers (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."

install_chromium() {
    if [ "${ROOMSYNC_SKIP_SYSTEM_PACKAGES:-0}" = 1 ]; then
        echo "tests/run.sh: ROOMSYNC_SKIP_SYSTEM_PACKAGES=1: not installing chromium" >&2
        return
    fi
    if [ -t 0 ] && [ -t 2 ]; then
        local answer
        read -r -p "tests/run.sh: install Debian's chromium with apt-get (for the HTML report test)? [y/N] " answer
        case $answer in
            y | Y | yes) ;;
            *)
                echo "tests/run.sh: not installing chromium (ROOMSYNC_SKIP_SYSTEM_PACKAGES=1 stops this question)" >&2
                return
                ;;
        esac
    fi
    echo "tests/run.sh: installing Debian's chromium for the HTML report test" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    install_chromium
fi

python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict etl
.venv/bin/python -m pytest -n "${ROOMSYNC_TEST_WORKERS:-4}" "$@"
