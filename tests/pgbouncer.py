"""A throwaway PgBouncer (Debian's) in front of the test PostgreSQL, in transaction or session
pooling, set up as docs/operations.md says ("Many web hosts: PgBouncer")."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INI = """
[databases]
* = host={host} port={port} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = {mode}
default_pool_size = {pool}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
server_reset_query = {reset}
server_login_retry = 1
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def pgbouncer_binary() -> str | None:
    for path in ("/usr/sbin/pgbouncer", shutil.which("pgbouncer")):
        if path and Path(path).exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    def __init__(self, *, host: str, port: int, user: str, mode: str, pool: int) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (scripts/with_services.sh installs it)")
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="applause-test-pgbouncer."))
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            INI.format(
                host=host,
                port=port,
                user=user,
                listen=self.port,
                dir=self.dir,
                mode=mode,
                pool=pool,
                # Transaction pooling needs no reset; session pooling keeps the default.
                reset="" if mode == "transaction" else "DISCARD ALL",
            )
        )
        cmd = [binary, str(ini)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            for path in self.dir.iterdir():
                shutil.chown(path, "postgres", "postgres")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"pgbouncer did not start ({self.dir}/pgbouncer.log)")
            time.sleep(0.05)

    def _answers(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.3)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.dir / "pgbouncer.pid").read_text().split()[0]), signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
