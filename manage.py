#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path

# `make run` writes the settings it runs with (DEBUG on, SQLite, localstripe) to this file,
# so that the README's operator commands work as written beside it. It is read only when the
# environment names neither DEBUG nor DATABASE_URL (an operator's own configuration always
# wins), and only by manage.py: `make serve`, `make worker` and `make beat` never read it.
LOCAL_ENV = Path(__file__).resolve().parent / "var" / "local.env"


def load_local_env() -> None:
    if "DEBUG" in os.environ or "DATABASE_URL" in os.environ or not LOCAL_ENV.is_file():
        return
    for line in LOCAL_ENV.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            os.environ.setdefault(key.strip(), value.strip())


def main():
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    load_local_env()
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
