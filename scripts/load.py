"""A bounded load test of `pgask serve`: N concurrent clients for T seconds mixing /v1/search and
extractive /v1/ask; prints throughput, p50/p99 latency and errors, and exits 1 on any error.

By default it starts `pgask serve` itself on a free loopback port, with a temporary PGASK_HOME
(a fresh embedded Postgres), no language model (answers are extractive) and the project's own
docs/ as the corpus. With --url (and --token) it loads a server that is already running, which
must listen on loopback: this is a test, not a tool for loading other people's machines.

    python scripts/load.py                      # 20 clients for 30 s
    python scripts/load.py --clients 5 --seconds 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx

MAX_CLIENTS = 200
MAX_SECONDS = 600
QUESTIONS = [
    "How do I use my own Postgres server?",
    "Which embedding model is used by default?",
    "How are documents split into chunks?",
    "How do I build an HNSW index?",
    "What does the HTTP API return for a search?",
    "How do I stream an answer from the API?",
    "Which environment variable holds the API token?",
    "How are API keys kept out of the database?",
    "What happens when the embedding model changes?",
    "How is the cost of embedding calls recorded?",
    "How do I run pgask on Citus or Greenplum?",
    "What does pgask status show?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def started_server(corpus: Path) -> Iterator[tuple[str, Path]]:
    """`pgask serve` on a free loopback port over a fresh knowledge base of `corpus`: (URL, its log)."""
    pgask = shutil.which("pgask", path=str(Path(sys.executable).parent)) or shutil.which("pgask")
    if not pgask:
        sys.exit("pgask is not installed in this environment: pip install -e . first")
    home = Path(tempfile.mkdtemp(prefix="pgask-load-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGASK_", "OPENAI_"))}
    env.update(PGASK_HOME=str(home), PGASK_CONFIG=str(home / "none.toml"))  # extractive answers, defaults
    log = home / "serve.log"
    try:
        print(f"ingesting {corpus} into a fresh knowledge base under {home} ...", file=sys.stderr)
        subprocess.run([pgask, "ingest", str(corpus)], env=env, check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        with log.open("w") as sink:
            server = subprocess.Popen([pgask, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                      stdout=sink, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None:
                    sys.exit(f"pgask serve exited:\n{log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=10).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("pgask serve did not become ready in 300 s")
                time.sleep(0.5)
            yield url, log
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    finally:
        from pgask.db.embedded import stop_embedded  # the embedded Postgres outlives pgask processes

        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)


async def client(http: httpx.AsyncClient, rng: random.Random, deadline: float, results: list, errors: list) -> None:
    """Requests one after another until the deadline: half searches, half extractive answers."""
    while time.monotonic() < deadline:
        question = rng.choice(QUESTIONS)
        kind = rng.choice(("search", "ask"))
        body = {"query": question, "k": 5} if kind == "search" else {"question": question}
        started = time.perf_counter()
        try:
            response = await http.post(f"/v1/{kind}", json=body)
            ok = response.status_code == 200 and (kind == "search" or response.json()["mode"] in ("extractive", "none"))
            detail = f"HTTP {response.status_code}: {response.text[:200]}"
        except (httpx.HTTPError, ValueError) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append((kind, time.perf_counter() - started, ok))
        if not ok:
            errors.append(f"{kind}: {detail}")


async def run_load(url: str, token: str | None, clients: int, seconds: float, seed: int) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
        for kind, body in (("search", {"query": QUESTIONS[0]}), ("ask", {"question": QUESTIONS[0]})):  # warm up
            (await http.post(f"/v1/{kind}", json=body)).raise_for_status()
        results: list[tuple[str, float, bool]] = []
        errors: list[str] = []
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(client(http, random.Random(seed + n), deadline, results, errors)
                               for n in range(clients)))
        elapsed = time.monotonic() - started
    report = {"url": url, "clients": clients, "seconds": round(elapsed, 1), "requests": len(results),
              "errors": len(errors), "throughput_rps": round(len(results) / elapsed, 2),
              **latencies(r[1] for r in results)}
    for kind in ("search", "ask"):
        times = [r[1] for r in results if r[0] == kind]
        report[kind] = {"requests": len(times), "throughput_rps": round(len(times) / elapsed, 2), **latencies(times)}
    report["first_errors"] = errors[:5]
    return report


def latencies(seconds) -> dict:
    values = sorted(seconds)
    if len(values) < 2:
        return {"p50_ms": None, "p99_ms": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": round(statistics.median(values) * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1),
            "max_ms": round(values[-1] * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help=f"concurrent clients (1-{MAX_CLIENTS}, default 20)")
    parser.add_argument("--seconds", type=float, default=30, help=f"how long to load (at most {MAX_SECONDS}, default 30)")
    parser.add_argument("--url", help="a running pgask serve on loopback (default: start one)")
    parser.add_argument("--token", help="its PGASK_API_TOKEN, if it has one")
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[1] / "docs",
                        help="documents for the server this script starts (default: the project's docs/)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the question and route choice")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--clients must be 1-{MAX_CLIENTS} and --seconds more than 0 and at most {MAX_SECONDS}")
    if args.url and not is_loopback(args.url):
        parser.error(f"{args.url} is not a loopback address: this script loads local servers only")

    def load(url: str) -> dict:
        print(f"{args.clients} clients for {args.seconds:g} s against {url} ...", file=sys.stderr)
        return asyncio.run(run_load(url, args.token, args.clients, args.seconds, args.seed))

    if args.url:
        report = load(args.url.rstrip("/"))
    else:
        with started_server(args.corpus) as (url, log):
            report = load(url)
            if report["errors"]:
                print(log.read_text()[-3000:], file=sys.stderr)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['requests']} requests in {report['seconds']} s from {report['clients']} clients: "
              f"{report['throughput_rps']} requests/s, p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, "
              f"{report['errors']} errors")
        for kind in ("search", "ask"):
            part = report[kind]
            print(f"  {kind:<6} {part['requests']:>6} requests  {part['throughput_rps']:>7} /s  "
                  f"p50 {part['p50_ms']} ms  p99 {part['p99_ms']} ms  max {part['max_ms']} ms")
        for error in report["first_errors"]:
            print(f"  error: {error}", file=sys.stderr)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
