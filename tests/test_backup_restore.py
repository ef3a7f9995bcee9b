"""The documented backup and restore (docs/operations.md): ``pg_dump -Fc`` of a live database,
``pg_restore`` into a new one, and ``verify_ledger`` passes against the restored copy."""

import os
import shutil
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _pg(tool: str) -> str:
    found = PG_BIN / tool
    return str(found) if found.exists() else (shutil.which(tool) or tool)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_pg_dump_and_pg_restore_round_trip_keeps_the_ledger_valid(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("backup and restore are PostgreSQL's (make test)")
    viewer = fund(UserFactory(), 500)
    make_creator("backed-up")
    GiftFactory(slug="backup-rose", coins=7)
    for _ in range(3):
        gift_send(
            sender=viewer,
            creator_handle="backed-up",
            gift_slug="backup-rose",
            quantity=2,
            client_key=str(uuid.uuid4()),
        )
    settings_dict = connection.settings_dict
    conn = ["-h", settings_dict["HOST"], "-p", str(settings_dict["PORT"])]
    conn += ["-U", settings_dict["USER"]]
    dump = tmp_path / "applause.dump"
    subprocess.run(
        [_pg("pg_dump"), *conn, "-Fc", "--no-owner", "-f", str(dump), settings_dict["NAME"]],
        check=True,
        capture_output=True,
    )
    restored = f"restore_{uuid.uuid4().hex[:10]}"
    subprocess.run([_pg("createdb"), *conn, restored], check=True, capture_output=True)
    try:
        subprocess.run(
            [_pg("pg_restore"), *conn, "--no-owner", "--exit-on-error", "-d", restored, str(dump)],
            check=True,
            capture_output=True,
        )
        base = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
        env["DATABASE_URL"] = urllib.parse.urlunsplit(base._replace(path=f"/{restored}"))
        result = subprocess.run(
            [sys.executable, "manage.py", "verify_ledger"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        check = subprocess.run(
            [
                _pg("psql"),
                *conn,
                "-d",
                restored,
                "-At",
                "-c",
                "SELECT count(*), coalesce(sum(coins), 0) FROM gifts_giftevent",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        assert check.stdout.strip() == "3|42"
        # The immutability trigger came back with the data: entries still refuse an UPDATE.
        refused = subprocess.run(
            [
                _pg("psql"),
                *conn,
                "-d",
                restored,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "UPDATE wallets_entry SET amount = amount + 1",
            ],
            capture_output=True,
            text=True,
        )
        assert refused.returncode != 0
    finally:
        subprocess.run(
            [_pg("dropdb"), *conn, "--force", "--if-exists", restored], capture_output=True
        )
