"""Open-loop HTTP load for ``POST /api/v1/gifts/send/`` at a fixed arrival rate (issue #15).

Requests are started on a fixed schedule (``--rate`` per second, evenly spaced), whether or
not earlier ones have answered: a slow server does not slow the load down, so its queueing
shows in the latencies (a closed loop would hide it: "coordinated omission"). Latency is
measured from the moment a request was DUE, not from when the client got round to sending it.
Requests due in the first ``--warmup`` seconds are not counted. Each request uses the next
sender's token (round robin over ``--tokens``), a random creator (or ``--hot``: the first) and
a fresh Idempotency-Key. ``--url`` may be given more than once: requests alternate between
the servers. Prints one JSON object: due and achieved rates, p50/p99/max, errors (any answer
but 201, or no answer within ``--timeout``), and this process's own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
import uuid
from pathlib import Path


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main_async(args) -> dict:
    import aiohttp

    tokens = json.loads(Path(args.tokens).read_text())
    creators = json.loads(Path(args.creators).read_text())
    urls = [u.rstrip("/") + "/api/v1/gifts/send/" for u in args.url]
    rng = random.Random(1)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counted = {"ok": 0, "errors": 0, "late_start_ms": 0.0}
    per_url_ok = [0] * len(urls)
    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    interval = 1.0 / args.rate
    total = int((args.warmup + args.duration) * args.rate)
    measured_from = int(args.warmup * args.rate)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, due: float) -> None:
            token = tokens[i % len(tokens)]
            creator = creators[0] if args.hot else rng.choice(creators)
            which = i % len(urls)
            headers = {
                "Authorization": f"Token {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
                # make serve sits behind a TLS proxy; without it the SSL redirect answers 301.
                "X-Forwarded-Proto": "https",
            }
            body = json.dumps({"creator": creator, "gift": args.gift})
            try:
                async with session.post(urls[which], data=body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                status = type(exc).__name__
            if i < measured_from:
                return
            statuses[status] = statuses.get(status, 0) + 1
            if status == "201":
                counted["ok"] += 1
                per_url_ok[which] += 1
                latencies.append(time.monotonic() - due)
            else:
                counted["errors"] += 1

        cpu_start = _cpu_s()
        start = time.monotonic() + 0.2
        measure_start = start + args.warmup
        tasks = []
        cpu_at_measure = None
        for i in range(total):
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i >= measured_from:
                counted["late_start_ms"] = max(counted["late_start_ms"], -delay * 1000)
            if cpu_at_measure is None and i >= measured_from:
                cpu_at_measure = _cpu_s()
            tasks.append(asyncio.ensure_future(one(i, due)))
        await asyncio.gather(*tasks)
        finished = time.monotonic()
        cpu_used = _cpu_s() - (cpu_at_measure if cpu_at_measure is not None else cpu_start)

    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    # Achieved: the measured requests that succeeded, over the time from the first measured
    # request's due moment to the last answer (a server that falls behind stretches it).
    elapsed = max(finished - measure_start, args.duration)
    return dict(
        rate=args.rate,
        due=total - measured_from,
        achieved_per_s=round(counted["ok"] / elapsed, 1),
        ok=counted["ok"],
        errors=counted["errors"],
        statuses=statuses,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        max_ms=round(latencies[-1] * 1000, 1) if latencies else None,
        client_cpu_s=round(cpu_used, 2),
        client_cpu_ms_per_request=round(cpu_used / max(1, total - measured_from) * 1000, 3),
        client_late_start_ms=round(counted["late_start_ms"], 1),
        per_url_ok=per_url_ok,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--creators", required=True)
    parser.add_argument("--gift", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--connections", type=int, default=512)
    parser.add_argument("--hot", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
