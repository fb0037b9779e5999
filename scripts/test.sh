#!/usr/bin/env bash
# The test command of README.md and .ci/run: install what the tests need, then run pytest.
#
#   ./scripts/test.sh [PYTEST ARGS ...]      e.g.  ./scripts/test.sh -x tests/test_cli.py
#
# 1. System programs (Debian packages): headless Chromium renders the HTML report (tests/test_report.py),
#    dciodvfy (dicom3tools) validates the DICOM files and exports (tests/test_dicom_sample.py,
#    tests/test_export_*.py), Orthanc is the real PACS of the nightly job's tests (tests/test_nightly_*.py)
#    and cc (gcc) compiles their loopback-bind shim (tests/nightly_support/). Missing ones are installed with
#    apt-get when running as root on a machine with apt-get; otherwise the script says what to install and stops (exit 3): tests are never skipped silently.
# 2. The virtualenv, exactly as README.md creates it: python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]"
# 3. ruff check and ruff format --check (configured in pyproject.toml): exit 1 on a fault.
# 4. .venv/bin/python -m pytest -q "$@"; its exit code is the script's (5, no tests collected, is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

have_chromium() {  # the names dosimetry.report.find_chromium looks for
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        command -v "$name" >/dev/null 2>&1 && return 0
    done
    return 1
}

missing_packages() {
    local missing=()
    have_chromium || missing+=(chromium)
    command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
    command -v Orthanc >/dev/null 2>&1 || missing+=(orthanc)  # in /usr/sbin: root's PATH (apt-get needs root)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    echo "${missing[*]}"
}

missing=$(missing_packages)
if [[ -n $missing ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: installing the Debian packages the tests need: $missing" >&2
        # shellcheck disable=SC2086  # one word per package
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }; then
            echo "error: apt-get could not install $missing; install them (apt-get install $missing) and run again" >&2
            exit 3
        fi
        # orthanc's package starts a system service; the tests start their own servers: stop and disable it
        if [[ $missing == *orthanc* ]] && command -v service >/dev/null 2>&1; then
            service orthanc stop >/dev/null 2>&1 || true
            command -v update-rc.d >/dev/null 2>&1 && update-rc.d orthanc disable >/dev/null 2>&1 || true
        fi
        missing=$(missing_packages)
        if [[ -n $missing ]]; then
            echo "error: apt-get installed $missing, but chromium, dciodvfy, Orthanc or cc is still not on PATH; check the installation" >&2
            exit 3
        fi
    else
        echo "error: the tests need the Debian packages: $missing (programs chromium, dciodvfy, Orthanc, cc); install them" \
             "with: sudo apt-get install $missing  (other systems: Chromium or Chrome, dicom3tools," \
             "https://www.dclunie.com/dicom3tools.html, Orthanc, https://www.orthanc-server.com, and a C compiler)," \
             "then run this script again" >&2
        exit 3
    fi
fi

python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]"

# lint and format check (ruff, configured in pyproject.toml) before the tests
if ! { .venv/bin/ruff check . && .venv/bin/ruff format --check .; }; then
    echo "error: ruff found lint or format faults (above); fix them, or run: .venv/bin/ruff format ." >&2
    exit 1
fi

status=0
# -n auto: one pytest worker per core (pytest-xdist); the tests use their own temporary folders and ports
.venv/bin/python -m pytest -q -n auto "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "error: pytest collected no tests (exit code 5); check the test paths given: $*" >&2
fi
exit "$status"
