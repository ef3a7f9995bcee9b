"""`make run`: the local, all-in-one supervisor (stdlib only).

Migrates, seeds demo data, starts localstripe (unless STRIPE_API_BASE points at another
server) and the Stripe Connect stand-in (payouts/connect_standin.py, unless
STRIPE_CONNECT_API_BASE is set), registers the webhook, then runs the web app (uvicorn) and a
Celery worker with beat. Ctrl-C / SIGTERM stops everything it started; if a child dies, the others are stopped
and it exits non-zero.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
BIN = VENV_BIN if VENV_BIN.is_dir() else Path(sys.executable).parent
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
LOCALSTRIPE_DEFAULT = "http://127.0.0.1:8420"
CONNECT_PORT = 8421

DEFAULTS = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "1",
    "PORT": "8000",
    "STRIPE_API_BASE": LOCALSTRIPE_DEFAULT,
    "STRIPE_SECRET_KEY": "sk_test_applause_local",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_applause_local",
    "STRIPE_WEBHOOK_SECRET": "whsec_applause_local",
    "STRIPE_JS_URL": "http://127.0.0.1:8420/js.stripe.com/v3/",
    # A demo creator who switches to Stripe payouts is paid by the next batch, not 72 hours
    # later (the hold against stolen accounts; production keeps it).
    "PAYOUT_DESTINATION_HOLD_HOURS": "0",
}


class Stop(Exception):
    """Raised by the signal handler to unwind to the cleanup code."""


children: list[tuple[str, subprocess.Popen[bytes]]] = []


def say(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


def on_signal(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when something answers HTTP at url (any status code)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_answers(url: str, seconds: float, proc: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(url):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def manage(*args: str) -> None:
    cmd = [PYTHON, "manage.py", *args]
    say("$ " + " ".join(["manage.py", *args]))
    rc = subprocess.run(cmd, cwd=REPO).returncode
    if rc != 0:
        say(f"manage.py {args[0]} failed (exit {rc})")
        raise SystemExit(rc)


def start(name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
    # Own process group, so Ctrl-C reaches only us and we stop each group ourselves.
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    children.append((name, proc))
    return proc


def stop_all() -> None:
    # Ignore further signals while cleaning up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    live = [(n, p) for n, p in children if p.poll() is None]
    # SIGTERM to each leader only: Celery then shuts its pool down itself (a SIGTERM to the
    # whole group made every pool process log "ERROR ... signal 15" over the banner).
    for _, proc in live:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    for _, proc in live:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    # SIGKILL whatever is left of each group (including grandchildren such as
    # celery's pool processes), then reap.
    for _, proc in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def register_webhook(api_base: str, port: str) -> None:
    url = f"{api_base.rstrip('/')}/_config/webhooks/applause"
    data = urllib.parse.urlencode(
        {
            "url": f"http://127.0.0.1:{port}/api/v1/webhooks/stripe/",
            "secret": os.environ["STRIPE_WEBHOOK_SECRET"],
        }
    ).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    # localstripe does not check auth on /_config/, but sending the key does no harm.
    token = base64.b64encode(f"{os.environ['STRIPE_SECRET_KEY']}:".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10):
            pass
    except (urllib.error.URLError, OSError) as exc:
        say(f"could not register the localstripe webhook at {url}: {exc}")
        raise SystemExit(1) from exc
    say(f"webhook registered: {api_base} -> http://127.0.0.1:{port}/api/v1/webhooks/stripe/")


def connect_standin_wanted() -> bool:
    """Whether to run the local Stripe Connect stand-in: Stripe is local (localstripe, which
    has no Connect) and nobody pointed STRIPE_CONNECT_API_BASE elsewhere. Sets that variable
    for everything started from here (and var/local.env)."""
    if os.environ.get("STRIPE_CONNECT_API_BASE"):
        return False
    parsed = urllib.parse.urlsplit(os.environ["STRIPE_API_BASE"])
    if not (parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost")):
        return False
    os.environ["STRIPE_CONNECT_API_BASE"] = f"http://127.0.0.1:{CONNECT_PORT}"
    return True


def start_connect_standin(state: Path) -> bool:
    """Start the stand-in (accounts and transfers kept in ``state``) unless one answers."""
    base = os.environ["STRIPE_CONNECT_API_BASE"]
    probe = f"{base}/v1/accounts/acct_probe"
    if answers(probe):
        say(f"using the Stripe Connect stand-in already running at {base}")
        return True
    say(f"starting the Stripe Connect stand-in on 127.0.0.1:{CONNECT_PORT}")
    proc = start(
        "connect",
        [
            PYTHON,
            "-m",
            "payouts.connect_standin",
            "--port",
            str(CONNECT_PORT),
            "--state",
            str(state),
            "--onboarding",
        ],
    )
    return wait_until_answers(probe, 30, proc)


# What manage.py needs to act on this setup (see LOCAL_ENV in manage.py).
LOCAL_ENV_KEYS = [*DEFAULTS, "STRIPE_CONNECT_API_BASE", "DATABASE_URL", "CELERY_BROKER_URL"]
LOCAL_ENV_KEYS.append("REDIS_URL")


def celery_command() -> list[str]:
    """The worker with beat. ``--quiet`` is Celery's own option (before ``worker``): its
    start-up banner and task lines would bury ours (the URLs and logins); they go to
    var/celery.log."""
    return [
        str(BIN / "celery"),
        "-A",
        "config",
        "--quiet",
        "worker",
        "-B",
        "-l",
        "info",
        "--concurrency",
        "2",
        "--scheduler",
        "config.beat:DatabaseScheduler",
        "--logfile",
        str(REPO / "var" / "celery.log"),
    ]


def write_local_env() -> None:
    keys = LOCAL_ENV_KEYS
    lines = ["# Written by `make run`: manage.py reads it when DEBUG and DATABASE_URL are unset."]
    lines += [f"{key}={os.environ[key]}" for key in keys if os.environ.get(key)]
    (REPO / "var" / "local.env").write_text("\n".join(lines) + "\n")


def main() -> int:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.chdir(REPO)
    port = os.environ["PORT"]
    api_base = os.environ["STRIPE_API_BASE"].rstrip("/")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        (REPO / "var").mkdir(exist_ok=True)
        connect = connect_standin_wanted()
        write_local_env()
        manage("migrate", "--noinput")
        manage("seed_demo")

        # ---- localstripe
        parsed = urllib.parse.urlsplit(api_base)
        is_default_local = parsed.hostname in ("127.0.0.1", "localhost") and parsed.port == 8420
        is_local = parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost")
        probe = f"{api_base}/js.stripe.com/v3/"
        if is_default_local and not answers(probe):
            say("starting localstripe on 127.0.0.1:8420")
            ls = start(
                "localstripe",
                [
                    PYTHON,
                    str(REPO / "scripts" / "localstripe_server.py"),
                    "--port",
                    "8420",
                    "--from-scratch",
                ],
            )
            if not wait_until_answers(probe, 30, ls):
                say("localstripe did not come up")
                return 1
        elif is_local:
            say(f"using the Stripe server already running at {api_base}")
            if not wait_until_answers(probe, 30, None):
                say(f"{api_base} does not answer")
                return 1
        else:
            say(f"STRIPE_API_BASE={api_base}: not localstripe, webhook not auto-registered")
        if is_local:
            register_webhook(api_base, port)
        if connect and not start_connect_standin(REPO / "var" / "connect.json"):
            say("the Stripe Connect stand-in did not come up")
            return 1

        # ---- web app and Celery
        web = start(
            "web",
            [
                str(BIN / "uvicorn"),
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                # Our middleware logs one line per request; uvicorn's own would repeat it.
                "--no-access-log",
            ],
        )
        start("celery", celery_command())
        home = f"http://127.0.0.1:{port}/"
        if not wait_until_answers(home, 60, web):
            say("the web app did not answer within 60 s")

        lines = [
            "",
            "Applause is running:",
            f"  portal       {home}",
            f"  admin        {home}admin/",
            f"  API docs     {home}api/docs/",
            f"  localstripe  {api_base}",
            f"  Connect      {os.environ.get('STRIPE_CONNECT_API_BASE', api_base)}"
            + ("  (local stand-in: Stripe payouts)" if connect else ""),
            "  Celery log   var/celery.log    mail  var/mail/",
        ]
        logins = REPO / "var" / "demo_logins.txt"
        if logins.is_file():
            lines += ["", "Demo logins:"]
            lines += ["  " + ln for ln in logins.read_text().splitlines()]
        lines += [
            "",
            "Operator commands work beside it as written, e.g.",
            "  .venv/bin/python manage.py verify_ledger",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
        print("\n".join(lines), flush=True)

        # ---- supervise
        while True:
            for name, proc in children:
                rc = proc.poll()
                if rc is not None:
                    say(f"{name} exited with status {rc}; stopping the rest")
                    return 1
            time.sleep(0.5)
    except Stop as sig:
        say(f"{sig}: stopping")
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
