"""Issue 21 item 5: operator commands work as written beside `make run`, and nothing but
manage.py ever reads `make run`'s settings (so `make serve` never starts in debug mode)."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def manage_module(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("applause_manage", REPO / "manage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    local_env = tmp_path / "local.env"
    local_env.write_text("# comment\nDEBUG=1\nSTRIPE_SECRET_KEY=sk_test_from_file\n")
    monkeypatch.setattr(module, "LOCAL_ENV", local_env)
    for key in ("DEBUG", "DATABASE_URL", "STRIPE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    return module


def test_manage_reads_make_runs_settings_when_nothing_is_configured(manage_module, monkeypatch):
    import os

    manage_module.load_local_env()
    assert os.environ["DEBUG"] == "1"
    assert os.environ["STRIPE_SECRET_KEY"] == "sk_test_from_file"


@pytest.mark.parametrize("configured", ["DEBUG", "DATABASE_URL"])
def test_an_operators_own_configuration_wins(manage_module, monkeypatch, configured):
    import os

    monkeypatch.setenv(configured, "0" if configured == "DEBUG" else "postgres://x/y")
    manage_module.load_local_env()
    assert "STRIPE_SECRET_KEY" not in os.environ
    assert os.environ.get("DEBUG") in (None, "0")


def test_only_manage_py_reads_the_local_settings():
    # The production entry points (gunicorn/uvicorn, celery) must never pick them up.
    for entry in ("config/wsgi.py", "config/asgi.py", "config/celery.py", "config/settings.py"):
        assert "local.env" not in (REPO / entry).read_text(), entry
    assert "DEBUG=0" in (REPO / "Makefile").read_text().split("serve:")[1].split("\n")[1]
