"""Helpers shared by every app's tests (import them from here, not from conftest)."""

from __future__ import annotations

import io
import os
import select
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from knox.models import AuthToken
from pypdf import PdfReader
from rest_framework.test import APIClient

# Headless Chromium as root (no sandbox), never reaching out to the internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def launch_chromium(playwright: Any) -> Any:
    """The browser of the browser tests: ``CHROMIUM_PATH`` (set by scripts/with_services.sh)."""
    return playwright.chromium.launch(
        executable_path=os.environ["CHROMIUM_PATH"], args=CHROMIUM_ARGS
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for servers a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client_for(user: Any) -> APIClient:
    """An API client signed in as ``user`` with a fresh knox token."""
    client = APIClient()
    _instance, key = AuthToken.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def idem() -> dict[str, str]:
    """Headers for a money POST with a fresh Idempotency-Key."""
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


def pdf_pages(body: bytes) -> list[str]:
    """The text of each page of a PDF, as a reader (or an accountant's tool) extracts it."""
    return [page.extract_text() for page in PdfReader(io.BytesIO(body)).pages]


def pdf_text(body: bytes) -> str:
    return "\n".join(pdf_pages(body))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a Django process a test starts (``manage.py …`` or a script) that
    must use the test's own database (a ``transactional_db`` test: it sees committed rows)."""
    from django.db import connection

    db = connection.settings_dict
    auth = f"{db['USER']}:{db['PASSWORD']}" if db.get("PASSWORD") else db["USER"]
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "x" * 50,
        DJANGO_SETTINGS_MODULE="config.settings",
        APPLAUSE_TESTING="1",
        CONN_MAX_AGE="0",
        **extra,
    )
    return env


def postgres_url(*, host: str, port: int, settings_dict: dict[str, Any]) -> str:
    """A ``DATABASE_URL`` for the test database (``settings_dict``) at ``host``:``port`` (the
    server itself, or a pooler in front of it)."""
    password = f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else ""
    return f"postgres://{settings_dict['USER']}{password}@{host}:{port}/{settings_dict['NAME']}"


class LineChild:
    """A process a test drives one line at a time: ``python -m MODULE`` reads one command per
    line on stdin and answers each with one line on stdout."""

    def __init__(self, module: str, env: dict[str, str], *, timeout: float) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def read_line(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        assert ready, "the child did not answer"
        line = self.proc.stdout.readline()
        assert line, f"the child died (exit {self.proc.poll()})"
        return line

    def send_line(self, text: str) -> str:
        """Send one command line; its answer line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.read_line()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
