#!/usr/bin/env bash
# The whole check suite. Normally run through `make test`, i.e. inside
# scripts/with_services.sh, which exports DATABASE_URL, REDIS_URL, STRIPE_* etc.
# --fast (make test-fast): the same checks, pytest without browser and slow tests.
set -euo pipefail

FAST=0
if [[ ${1:-} == --fast ]]; then
    FAST=1
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE=config.settings
export SECRET_KEY=test-secret-key-not-for-production-xxxxxxxxxxxxxxxxxxxxxxxx

step() { printf '\n==> %s\n' "$*"; }

step "ruff check"
ruff check .

step "ruff format --check"
ruff format --check .

# The type and schema checks run beside pytest: pytest -n 2 leaves the 2 cores idle part of
# the time (each worker's start, collection, the test database's copy), and the checks fill
# it. Their output is printed after pytest; a failure in either lane fails the run. mypy keeps
# its cache in .mypy_cache between runs.
checks_started=$SECONDS
checks_log="$(mktemp)"
django_checks() {
    step "makemigrations --check"
    python manage.py makemigrations --check --dry-run || return 1
    if grep -q "drf_spectacular" config/settings.py; then
        step "OpenAPI schema (spectacular --validate --fail-on-warn)"
        python manage.py spectacular --validate --fail-on-warn --file /dev/null || return 1
    else
        step "OpenAPI schema: skipped (drf_spectacular not in INSTALLED_APPS)"
    fi
}
checks_lane() {
    local rc=0
    django_checks || rc=1
    step "mypy (the apps listed in pyproject.toml)"
    mypy || rc=1
    step "checks done in $((SECONDS - checks_started)) s (beside pytest)"
    return $rc
}
checks_lane >"$checks_log" 2>&1 &
checks_pid=$!
# `|| true`: under set -e a failing command in the EXIT trap becomes the script's exit status,
# and the lane has normally been reaped already (kill fails: no such process).
trap 'kill "$checks_pid" 2>/dev/null || true; rm -f "$checks_log"' EXIT

pytest_started=$SECONDS
set +e
if [[ $FAST -eq 1 ]]; then
    step "pytest (fast: not browser, not slow)"
    pytest -n 2 -p no:cacheprovider -m "not browser and not slow"
else
    step "pytest"
    pytest -n 2 -p no:cacheprovider
fi
rc=$?
set -e
step "pytest done in $((SECONDS - pytest_started)) s (exit status $rc)"
checks_rc=0
wait "$checks_pid" || checks_rc=$?
cat "$checks_log"
if [[ $checks_rc -ne 0 ]]; then
    echo "checks failed (makemigrations --check, the OpenAPI schema or mypy: see above)" >&2
    exit 1
fi
if [[ $rc -eq 5 ]]; then
    echo "pytest: no tests ran" >&2
    exit 1
fi
exit "$rc"
