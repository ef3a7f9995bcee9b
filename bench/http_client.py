"""Closed-loop HTTP load for ``POST /api/v1/gifts/send/`` (run by bench/run.py as its own process).

Each of ``--concurrency`` clients owns one sender (its own token), sends a gift, waits for the
answer, sends the next: a closed loop. Requests that finish inside the measured window (after
``--warmup``) count towards the rate and the latency percentiles; errors count over the whole
run. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid


async def _client(session, url, token, creators, gift, t_measure, t_end, seed, out):
    import aiohttp

    rng = random.Random(seed)
    headers_base = {
        "Authorization": f"Token {token}",
        "Content-Type": "application/json",
        # make serve sits behind a TLS proxy in production; without this the SSL redirect
        # answers 301.
        "X-Forwarded-Proto": "https",
    }
    while True:
        now = time.monotonic()
        if now >= t_end:
            return
        body = json.dumps({"creator": rng.choice(creators), "gift": gift})
        headers = dict(headers_base, **{"Idempotency-Key": uuid.uuid4().hex})
        started = time.monotonic()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = f"{type(exc).__name__}"
        finished = time.monotonic()
        if status != 201:
            out["errors"] += 1
            if len(out["error_samples"]) < 5:
                out["error_samples"].append(str(status))
            continue
        out["ok_total"] += 1
        if t_measure <= started and finished <= t_end:
            out["latencies"].append(finished - started)


async def main_async(args) -> dict:
    import aiohttp

    tokens = json.loads(open(args.tokens).read())
    creators = json.loads(open(args.creators).read())
    url = args.url.rstrip("/") + "/api/v1/gifts/send/"
    out: dict = {"errors": 0, "ok_total": 0, "latencies": [], "error_samples": []}
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.monotonic()
        t_measure = t0 + args.warmup
        t_end = t_measure + args.duration
        await asyncio.gather(
            *[
                _client(
                    session,
                    url,
                    tokens[i % len(tokens)],
                    creators,
                    args.gift,
                    t_measure,
                    t_end,
                    i,
                    out,
                )
                for i in range(args.concurrency)
            ]
        )
    lat = sorted(out.pop("latencies"))
    n = len(lat)

    def pct(p: float) -> float:
        return lat[min(n - 1, int(p * n))] * 1000 if n else float("nan")

    out.update(
        requests_in_window=n,
        per_s=n / args.duration,
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=lat[-1] * 1000 if n else float("nan"),
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tokens", required=True, help="JSON file: list of API tokens")
    parser.add_argument("--creators", required=True, help="JSON file: list of creator handles")
    parser.add_argument("--gift", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--duration", type=float, default=30)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
