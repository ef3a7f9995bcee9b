#!/usr/bin/env bash
# The whole check suite. Normally run through `make test`, i.e. inside
# scripts/with_services.sh, which exports DATABASE_URL, REDIS_URL, STRIPE_* etc.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE=config.settings
export SECRET_KEY=test-secret-key-not-for-production-xxxxxxxxxxxxxxxxxxxxxxxx
export PYTHONDONTWRITEBYTECODE=1

step() { printf '\n==> %s\n' "$*"; }

step "ruff check"
ruff check .

step "ruff format --check"
ruff format --check .

step "mypy wallets"
mypy wallets

step "makemigrations --check"
python manage.py makemigrations --check --dry-run

if grep -q "drf_spectacular" config/settings.py; then
    step "OpenAPI schema (spectacular --validate --fail-on-warn)"
    python manage.py spectacular --validate --fail-on-warn --file /dev/null
else
    step "OpenAPI schema: skipped (drf_spectacular not in INSTALLED_APPS)"
fi

step "pytest"
set +e
pytest -n 2 -p no:cacheprovider
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "pytest: no tests ran" >&2
    exit 1
fi
exit "$rc"
