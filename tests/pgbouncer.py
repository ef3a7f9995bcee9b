"""A throwaway PgBouncer (Debian's) in front of a PostgreSQL, set up as docs/operations.md says
("Many web hosts: PgBouncer"): the one launcher of tests/test_locks_through_pgbouncer.py,
``make bench``'s PgBouncer step (bench/gift_bench.py) and ``make chaos`` (bench/chaos.py,
which also restarts it among its faults).

    bouncer = PgBouncer(host=..., port=..., user=..., mode="transaction", pool=8)
    with bouncer:  # start() ... close()
        url = bouncer.url("dbname")

``start`` / ``stop`` may be called again and again (a restart keeps the port, the ini and the
log); ``close`` stops it and removes its files, optionally keeping its log elsewhere.
"""

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

# Every database name goes to the same PostgreSQL (the tests' per-worker databases, the bench's
# and the chaos run's own). The server connections log in as the user without a password (the
# throwaway services trust local logins); so does every client (auth_type trust).
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
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits,options
server_reset_query = {reset}
server_login_retry = 1
server_round_robin = {round_robin}
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""

MODES = ("transaction", "session")
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def pgbouncer_binary() -> str | None:
    for path in ("/usr/sbin/pgbouncer", shutil.which("pgbouncer")):
        if path and Path(path).exists():
            return path
    return None


def install_pgbouncer() -> str:
    """Debian's pgbouncer with apt-get, under the lock scripts/with_services.sh installs the
    other services with (it installs PgBouncer too; this is for a run outside it)."""
    script = (
        "flock -w 900 9 && DEBIAN_FRONTEND=noninteractive apt-get update -qq && "
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer"
    )
    subprocess.run(
        ["bash", "-c", f"({script}) 9>/tmp/applause-apt.lock"], check=True, capture_output=True
    )
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("apt-get installed pgbouncer, but there is no pgbouncer binary")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PgBouncer:
    """One PgBouncer on a free port of 127.0.0.1 in ``mode`` pooling ("transaction" or
    "session") with ``pool`` server connections per database and user. ``round_robin``: lend
    the idle server connections in turn (``server_round_robin = 1``) instead of the most
    recently used one first, so that one client's consecutive transactions land on different
    server connections, as they do on a busy pool."""

    def __init__(
        self, *, host: str, port: int, user: str, mode: str, pool: int, round_robin: bool = False
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"pool mode {mode!r}: one of {MODES}")
        self.host, self.server_port, self.user = host, port, user
        self.mode, self.pool, self.round_robin = mode, pool, round_robin
        self.port = _free_port()
        # PgBouncer refuses to run as root: as root it runs as the postgres user, which owns
        # this directory (ini, userlist, log, pidfile).
        self.dir = Path(tempfile.mkdtemp(prefix="applause-pgbouncer."))
        self.log = self.dir / "pgbouncer.log"
        self.proc: subprocess.Popen | None = None

    def url(self, dbname: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Start it and wait until its port accepts connections."""
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (scripts/with_services.sh installs it)")
        (self.dir / "userlist.txt").write_text(f'"{self.user}" ""\n')
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            INI.format(
                host=self.host,
                port=self.server_port,
                user=self.user,
                listen=self.port,
                dir=self.dir,
                mode=self.mode,
                pool=self.pool,
                round_robin=int(self.round_robin),
                # Session pooling must reset a server connection before lending it to the next
                # client (PgBouncer's default DISCARD ALL): a process killed while it held a
                # session advisory lock leaves it on the pooled connection otherwise (make
                # chaos found it). Transaction pooling needs none.
                reset="" if self.mode == "transaction" else "DISCARD ALL",
            )
        )
        cmd = [binary, str(ini)]
        if os.geteuid() == 0:
            for path in (self.dir, *self.dir.iterdir()):
                shutil.chown(path, "postgres", "postgres")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(
            cmd,
            cwd="/",  # a directory the postgres user may enter
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"pgbouncer did not start: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to PgBouncer itself (runuser passes nothing on): immediate shutdown, every
        client and server connection dropped. SIGKILL if it is still there after 15 s."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.dir / "pgbouncer.pid").read_text().split()[0]), signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def close(self, *, keep_log: Path | None = None) -> None:
        """Stop it and remove its files; ``keep_log``: copy its log there first."""
        self.stop()
        if keep_log is not None and self.log.exists():
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log, keep_log)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 10) -> str:
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "no log"
        return "\n".join(tail) or "an empty log"

    def __enter__(self) -> PgBouncer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
