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

# mypy (one process, its cache in .mypy_cache kept between runs) runs beside the two Django
# checks: on 2 cores that is the wall time of the longer lane, not of both.
checks_started=$SECONDS
mypy_log="$(mktemp)"
mypy >"$mypy_log" 2>&1 &
mypy_pid=$!
trap 'kill "$mypy_pid" 2>/dev/null; rm -f "$mypy_log"' EXIT
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
django_rc=0
django_checks || django_rc=$?
mypy_rc=0
wait "$mypy_pid" || mypy_rc=$?
step "mypy (the apps listed in pyproject.toml)"
cat "$mypy_log"
if [[ $django_rc -ne 0 || $mypy_rc -ne 0 ]]; then
    exit 1
fi
step "checks done in $((SECONDS - checks_started)) s (mypy beside makemigrations + OpenAPI)"

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
step "pytest done in $((SECONDS - pytest_started)) s"
if [[ $rc -eq 5 ]]; then
    echo "pytest: no tests ran" >&2
    exit 1
fi
exit "$rc"
