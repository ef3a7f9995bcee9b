#!/usr/bin/env bash
# Usage: scripts/with_services.sh CMD [ARGS...]
#
# Starts throwaway services (PostgreSQL 15, Redis, localstripe) on free ports in a
# fresh temp dir, makes sure Chromium is installed, exports their URLs, runs CMD,
# and always stops everything afterwards. Exits with CMD's exit status.
# Several invocations may run in parallel: each gets its own ports and directory.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_BIN=/usr/lib/postgresql/15/bin
LOCALSTRIPE="$REPO/.venv/bin/localstripe"
APT_LOCK=/tmp/applause-apt.lock

log() { echo "[services] $*" >&2; }

# ---------------------------------------------------------------- install (idempotent)
APT_UPDATED=0
apt_install() {
    # Serialised across parallel invocations; apt itself refuses concurrent runs.
    (
        flock -w 900 9
        if [[ $APT_UPDATED -eq 0 ]]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
    ) 9>"$APT_LOCK"
    APT_UPDATED=1
}

missing=()
[[ -x $PG_BIN/postgres && -x $PG_BIN/initdb ]] || missing+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[[ -x /usr/lib/chromium/chromium ]] || missing+=(chromium)
# PgBouncer: tests/test_locks_through_pgbouncer.py (and make chaos) run the app through it.
[[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]} (apt-get)"
    apt_install "${missing[@]}"
fi
if [[ ! -x $LOCALSTRIPE ]]; then
    echo "[services] $LOCALSTRIPE is missing: run 'make venv-dev' first" >&2
    exit 1
fi

# ---------------------------------------------------------------- helpers
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_in_use() {
    python3 -c 'import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

# ---------------------------------------------------------------- temp dir + cleanup
STARTED_AT=$SECONDS
SVC_DIR="$(mktemp -d /tmp/applause-services.XXXXXXXX)"
chmod 711 "$SVC_DIR"   # postgres must be able to traverse into it
PG_DIR="$SVC_DIR/pg"          # socket dir + log (owned by postgres)
PG_DATA="$PG_DIR/data"
REDIS_DIR="$SVC_DIR/redis"
PG_STARTED=0
REDIS_PID=""
STRIPE_PID=""
CMD_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $CMD_PID ]] && kill -0 "$CMD_PID" 2>/dev/null; then
        kill -TERM "$CMD_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$CMD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CMD_PID" 2>/dev/null
        wait "$CMD_PID" 2>/dev/null
    fi
    if [[ -n $STRIPE_PID ]]; then
        kill -TERM "$STRIPE_PID" 2>/dev/null
        for _ in $(seq 30); do kill -0 "$STRIPE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$STRIPE_PID" 2>/dev/null
        wait "$STRIPE_PID" 2>/dev/null
    fi
    if [[ -n $REDIS_PID ]]; then
        # A test may have restarted Redis (make chaos does): stop whichever process holds
        # the pidfile now, as well as the one we started.
        if [[ -s $REDIS_DIR/pid ]] && [[ "$(cat "$REDIS_DIR/pid")" != "$REDIS_PID" ]]; then
            kill -KILL "$(cat "$REDIS_DIR/pid")" 2>/dev/null
        fi
        kill -TERM "$REDIS_PID" 2>/dev/null
        for _ in $(seq 30); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$REDIS_PID" 2>/dev/null
    fi
    if [[ $PG_STARTED -eq 1 ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 20 stop >/dev/null 2>&1
        if [[ -f $PG_DATA/postmaster.pid ]]; then
            kill -KILL "$(head -1 "$PG_DATA/postmaster.pid")" 2>/dev/null
        fi
    fi
    rm -rf "$SVC_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- PostgreSQL 15
install -d -o postgres -g postgres -m 700 "$PG_DIR"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 \
    >"$SVC_DIR/initdb.log" 2>&1 || { cat "$SVC_DIR/initdb.log" >&2; exit 1; }
# Tests run without durability (fast); APPLAUSE_PG_DURABLE=1 (make bench) keeps PostgreSQL's
# production defaults: fsync, synchronous_commit and full_page_writes on.
PG_NOT_DURABLE="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
if [[ ${APPLAUSE_PG_DURABLE:-0} == 1 ]]; then
    PG_NOT_DURABLE=""
fi
for attempt in 1 2 3 4 5; do
    PG_PORT="$(free_port)"
    if runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/pg.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 $PG_NOT_DURABLE \
            -c max_connections=300" \
        start >/dev/null 2>&1; then
        PG_STARTED=1
        break
    fi
    log "postgres failed to start on port $PG_PORT (attempt $attempt)"
    tail -5 "$PG_DIR/pg.log" >&2 || true
done
[[ $PG_STARTED -eq 1 ]] || { log "postgres did not start"; exit 1; }
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres applause
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/applause"
log "postgresql 15 on 127.0.0.1:$PG_PORT (db applause)${PG_NOT_DURABLE:+, not durable}"

# ---------------------------------------------------------------- Redis
mkdir -p "$REDIS_DIR"
for attempt in 1 2 3 4 5; do
    REDIS_PORT="$(free_port)"
    if redis-server --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
        --pidfile "$REDIS_DIR/pid" --save "" --appendonly no \
        --logfile "$REDIS_DIR/redis.log" >/dev/null 2>&1; then
        for _ in $(seq 100); do
            [[ -s $REDIS_DIR/pid ]] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
        if [[ -s $REDIS_DIR/pid ]] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
            REDIS_PID="$(cat "$REDIS_DIR/pid")"
            break
        fi
        [[ -s $REDIS_DIR/pid ]] && kill -KILL "$(cat "$REDIS_DIR/pid")" 2>/dev/null || true
        rm -f "$REDIS_DIR/pid"
    fi
    log "redis failed to start on port $REDIS_PORT (attempt $attempt)"
    tail -5 "$REDIS_DIR/redis.log" >&2 || true
done
[[ -n $REDIS_PID ]] || { log "redis did not start"; exit 1; }
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export CELERY_BROKER_URL="redis://127.0.0.1:$REDIS_PORT/1"
log "redis on 127.0.0.1:$REDIS_PORT"

# ---------------------------------------------------------------- localstripe
# scripts/localstripe_server.py runs localstripe with its state in memory only (its own
# pickle-after-every-write makes long runs quadratic and parallel instances share a file).
for attempt in 1 2 3 4 5; do
    STRIPE_PORT="$(free_port)"
    setsid "$REPO/.venv/bin/python" "$REPO/scripts/localstripe_server.py" \
        --port "$STRIPE_PORT" --from-scratch \
        >"$SVC_DIR/localstripe.log" 2>&1 </dev/null &
    STRIPE_PID=$!
    ok=0
    for _ in $(seq 200); do
        kill -0 "$STRIPE_PID" 2>/dev/null || break
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$STRIPE_PORT/js.stripe.com/v3/" 2>/dev/null; then
            ok=1
            break
        fi
        sleep 0.1
    done
    [[ $ok -eq 1 ]] && break
    log "localstripe failed to start on port $STRIPE_PORT (attempt $attempt)"
    tail -5 "$SVC_DIR/localstripe.log" >&2 || true
    kill -KILL "$STRIPE_PID" 2>/dev/null || true
    wait "$STRIPE_PID" 2>/dev/null || true
    STRIPE_PID=""
done
[[ -n $STRIPE_PID ]] || { log "localstripe did not start"; exit 1; }
export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT"
export STRIPE_SECRET_KEY=sk_test_applause_local
export STRIPE_PUBLISHABLE_KEY=pk_test_applause_local
export STRIPE_WEBHOOK_SECRET=whsec_applause_test
export STRIPE_JS_URL="http://127.0.0.1:$STRIPE_PORT/js.stripe.com/v3/"
# Production-mode processes started here (the benchmarks, the chaos run, gunicorn and Celery
# in tests) talk to this localstripe: let them start (wallets/checks.py: a warning, not a
# refusal, and only for a loopback API base).
export STRIPE_ALLOW_LOCALSTRIPE=1
log "localstripe on 127.0.0.1:$STRIPE_PORT"

# ---------------------------------------------------------------- Chromium
# /usr/bin/chromium is Debian's shell wrapper; Playwright works with either, the real
# binary avoids the wrapper's extra flags.
export CHROMIUM_PATH=/usr/lib/chromium/chromium
log "chromium at $CHROMIUM_PATH"

export APPLAUSE_SERVICES_DIR="$SVC_DIR"
log "services up in $((SECONDS - STARTED_AT)) s"

# ---------------------------------------------------------------- run CMD
# Run in the background (stdin kept) so that INT/TERM traps fire at once; the
# EXIT trap then stops CMD and the services.
"$@" <&0 &
CMD_PID=$!
set +e
wait "$CMD_PID"
rc=$?
CMD_PID=""
exit "$rc"
