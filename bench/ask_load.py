"""Concurrent /ask against a real server: answers per second, latency and the server's memory.

    .venv/bin/python bench/ask_load.py --data-dir /tmp/seedidx [--concurrency 1 4 16 64] [--seconds 20]

Starts `qa serve` on the index (default settings, so no concurrency limit), then for each
concurrency keeps that many distinct questions in flight for ``--seconds`` (distinct, because the
server answers identical concurrent questions once) and reports answers/s, p50 / p95 latency, the
server's resident memory after the step and its peak so far. Writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BASE = ["combien Netflix investit-il en 2018 ?", "Qui dirige le contenu de Netflix ?", "Où Netflix ouvre-t-il un bureau ?",
        "Combien de séries originales Netflix veut-il produire en 2016 ?", "Qui est Reed Hastings ?",
        "Combien d'abonnés compte Netflix ?", "Quand Netflix est-il arrivé en France ?", "Combien coûte l'abonnement Netflix ?"]
SUFFIX = ["", " selon l'article", " d'après Numerama", " exactement", " en ce moment", " aujourd'hui", " au juste", " en fait"]


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) of ``pid`` in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def step(url: str, concurrency: int, seconds: float, questions) -> dict:
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency + 2)) as client:
        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < end:
                t0 = time.perf_counter()
                r = await client.post("/ask", json={"question": next(questions)})
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.monotonic() - t0
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * (len(latencies) - 1)))]) if latencies else None  # noqa: E731
    return {"concurrency": concurrency, "answers": len(latencies), "errors": errors, "answers_per_s": round(len(latencies) / wall, 2), "p50_ms": pick(0.5), "p95_ms": pick(0.95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ask_load.json")
    args = ap.parse_args()
    env = {**os.environ, "QA_DATA_DIR": str(args.data_dir), "QA_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(args.port)], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("the server did not start")
        questions = itertools.cycle([b.rstrip(" ?") + s + " ?" for b in BASE for s in SUFFIX])
        asyncio.run(step(url, 1, 3, questions))  # warm-up
        rss, _ = memory_mb(server.pid)
        rows = [{"concurrency": 0, "rss_mb": round(rss)}]
        print(f"started: rss {rss:.0f} MB", flush=True)
        for c in args.concurrency:
            row = asyncio.run(step(url, c, args.seconds, questions))
            row["rss_mb"], row["peak_rss_mb"] = (round(v) for v in memory_mb(server.pid))
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=120)
    args.out.write_text(json.dumps({"cpu_count": os.cpu_count(), "seconds": args.seconds, "steps": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
