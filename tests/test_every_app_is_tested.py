"""Every app's tests run in `make test`: an app left out of pytest's testpaths would pass CI
without a single one of its tests running."""

import tomllib
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parent.parent


def test_every_local_app_with_tests_is_in_testpaths():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    testpaths = set(config["tool"]["pytest"]["ini_options"]["testpaths"])
    with_tests = {app for app in settings.LOCAL_APPS if (REPO / app / "tests").is_dir()}
    with_tests |= {p.parent.name for p in REPO.glob("*/tests/__init__.py")}
    assert with_tests - testpaths == set()
