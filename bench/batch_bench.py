"""Benchmark: N restaurants x 12 steps against the sandbox, at a given step latency and concurrency.

Prints, for the same N, c and latency:
  * the physical limit: ceil(N / c) x the critical path of one restaurant (4 steps) x latency;
  * a plain-asyncio baseline making the same HTTP calls (no Prefect, no database);
  * the real batch flow (Prefect subflow per restaurant, 12 step tasks, PostgreSQL ledger):
    wall time, ratio to the limit, orchestration cost per restaurant and per step;
  * peak memory (RSS high-water mark) of this process, the Prefect server and the sandbox.

Orchestration cost is measured with instant steps (--latency-ms 0), in two runs: one where every
step is disabled (so a restaurant is its subflow and its ledger writes only: cost per restaurant
= wall / N), and the normal one (cost per step = (wall - wall without steps - baseline) / 12N).

Needs PostgreSQL (REGBATCH_BENCH_DATABASE_URL, default the local `test` database; a schema of its
own is created) and a Prefect server: PREFECT_API_URL, or --start-server to start one on
PostgreSQL (database `regbatch_bench_prefect`), or --scaled-server to start Prefect's scaled
server instead (scripts/prefect-scaled-server: database `regbatch_bench_prefect_scaled`, an empty
Redis database, services in their own process, --api-workers API workers; needs the `scaled`
extra and Redis on 127.0.0.1:6379), or --embedded for Prefect's own SQLite server.

    .venv/bin/python bench/batch_bench.py --n 200 --c 25 --latency-ms 1000 --start-server
    .venv/bin/python bench/batch_bench.py --n 200 --c 25 --latency-ms 0 --cost --start-server
    .venv/bin/python bench/batch_bench.py --n 30 --c 5 --latency-ms 100 --account-spacing-s 2 \
        --start-server
    .venv/bin/python bench/batch_bench.py --n 200 --c 25 --latency-ms 1000 --scaled-server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCALED_SERVER = ROOT / "scripts" / "prefect-scaled-server"
SERVICE_KEY = "bench-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def process_tree(pid: int, with_children: bool = True) -> list[int]:
    """The process and (if asked) its direct children, from /proc; OSError when it is gone."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(map(int, children) if with_children else [])]


def peak_rss_mb(pid: int) -> float | None:
    """The process tree's VmHWM (peak resident set) in MB, from /proc."""
    total = 0.0
    try:
        for p in process_tree(pid):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        return total
    except OSError:
        return None


@dataclass
class PrefectServer:
    """A Prefect server this benchmark started: its processes by name, for CPU and peak RSS."""

    process: subprocess.Popen[bytes]
    url: str
    pids: dict[str, int]
    redis_db: int | None = None
    logs: list[Path] = field(default_factory=list)
    database: str | None = None  # this run's own Prefect database, dropped at the end

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.redis_db is not None:
            import redis

            redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db).flushdb()
        if self.database is not None:
            drop_database(self.database)


def prefect_database_name(kind: str) -> str:
    """A Prefect database of this run's own: two benchmarks at once never share (or drop) one."""
    return f"regbatch_bench_{kind}_{os.getpid()}"


def fresh_database(name: str) -> str:
    """Drop and create database NAME on the local PostgreSQL; its asyncpg URL."""
    from sqlalchemy import create_engine, text

    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def start_prefect_server(tmp: Path) -> PrefectServer:
    """`prefect server start`: one process, API and services together."""
    port, database = free_port(), prefect_database_name("prefect")
    env = {
        **os.environ,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": fresh_database(database),
        "PREFECT_HOME": str(tmp / "prefect-server"),
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    wait_http(url + "/health")
    return PrefectServer(process, url, {"Prefect server": process.pid}, database=database)


def empty_redis_db() -> int:
    """The first Redis database (1-15 on 127.0.0.1:6379) holding no key."""
    import redis

    for db in range(1, 16):
        if redis.Redis(host="127.0.0.1", port=6379, db=db).dbsize() == 0:
            return db
    raise SystemExit("no empty Redis database on 127.0.0.1:6379")


def start_scaled_server(tmp: Path, workers: int = 2) -> PrefectServer:
    """Prefect's scaled server through scripts/prefect-scaled-server: PostgreSQL, Redis
    messaging, the services in a process of their own and WORKERS API workers."""
    port, redis_db, logs = free_port(), empty_redis_db(), tmp / "scaled-server"
    database = prefect_database_name("prefect_scaled")
    env = {
        **os.environ,
        "PREFECT_SCALED_DATABASE_URL": fresh_database(database),
        "PREFECT_SCALED_REDIS_DB": str(redis_db),
        "PREFECT_SCALED_PREFECT": str(BIN / "prefect"),
    }
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "script.log").open("wb") as out:
        process = subprocess.Popen(
            [
                str(SCALED_SERVER),
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--dir",
                str(logs),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    wait_http(url + "/health")
    pids = {
        f"Prefect API ({workers} workers)": int((logs / "api.pid").read_text()),
        "Prefect services": int((logs / "services.pid").read_text()),
    }
    return PrefectServer(process, url, pids, redis_db, sorted(logs.glob("*.log")), database)


def start_server(args: argparse.Namespace, tmp: Path) -> PrefectServer:
    if args.scaled_server:
        return start_scaled_server(tmp, args.api_workers)
    return start_prefect_server(tmp)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--start-server",
        action="store_true",
        help="start a Prefect server on PostgreSQL for this run",
    )
    parser.add_argument(
        "--scaled-server",
        action="store_true",
        help="start Prefect's scaled server (scripts/prefect-scaled-server) for this run",
    )
    parser.add_argument(
        "--api-workers", type=int, default=2, help="API workers of the scaled server"
    )


def until_idle(
    pids: dict[str, int], limit_s: float = 90, window_s: float = 3, busy_cpu_s: float = 0.3
) -> tuple[float, dict[str, float]]:
    """Wait until the processes use under BUSY_CPU_S of CPU in WINDOW_S (or LIMIT_S passes):
    (seconds waited, CPU seconds each used meanwhile) - the backlog a server still works off."""
    start = time.monotonic()
    first = last = {name: cpu_seconds(pid) for name, pid in pids.items()}
    while time.monotonic() - start < limit_s:
        time.sleep(window_s)
        now = {name: cpu_seconds(pid) for name, pid in pids.items()}
        busy = sum(now.values()) - sum(last.values()) >= busy_cpu_s
        last = now
        if not busy:
            break
    waited = time.monotonic() - start
    return waited, {name: last[name] - first[name] for name in pids}


def print_after_run(server: PrefectServer | None) -> None:
    """How long, and at what CPU, the Prefect server kept working after the run returned."""
    if server is None:
        return
    waited, cpu = until_idle(server.pids)
    print(
        f"after the run             {waited:8.1f} s until the server idled (at most 90); "
        "CPU meanwhile " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cpu.items())
    )


def start_sandbox(
    latency_ms: float, account_spacing_s: float = 0.0
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "REGBATCH_PLATFORM_SERVICE_KEY": SERVICE_KEY}
    process = subprocess.Popen(
        [
            str(BIN / "regbatch"),
            "sandbox",
            "serve",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--account-spacing-s",
            str(account_spacing_s),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    from regbatch.sandbox.control import SandboxControl

    SandboxControl(url, SERVICE_KEY).set_image_processing(0)
    return process, url


def bench_database() -> tuple[str, str]:
    """(the database URL, this run's schema in it: REGBATCH_BENCH_SCHEMA when a parent process
    chose it, else named after this process)."""
    base = os.environ.get(
        "REGBATCH_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    return base, os.environ.get("REGBATCH_BENCH_SCHEMA") or f"regbatch_bench_{os.getpid()}"


def use_bench_schema() -> None:
    """Point this process (and the processes it starts) at the run's schema."""
    base, schema = bench_database()
    os.environ["REGBATCH_BENCH_SCHEMA"] = schema
    os.environ["REGBATCH_DATABASE_URL"] = f"{base}?options=-csearch_path%3D{schema}"


def drop_bench_schema() -> None:
    """Leave the database as it was: this run's schema goes."""
    from sqlalchemy import create_engine, text

    from regbatch.db.engine import get_engine

    base, schema = bench_database()
    if os.environ.get("REGBATCH_DATABASE_URL", "").endswith(schema):
        get_engine().dispose()
    engine = create_engine(base)
    with engine.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def prepare_database(n: int, all_steps_off: bool) -> tuple[Any, list[Any]]:
    """A fresh schema with one organisation and N restaurants (full menus: all 12 steps run)."""
    from sqlalchemy import create_engine, text

    base, schema = bench_database()
    engine = create_engine(base)
    with engine.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
    engine.dispose()
    use_bench_schema()
    url = os.environ["REGBATCH_DATABASE_URL"]
    from regbatch.db import migrate
    from regbatch.db.engine import session_scope
    from regbatch.db.organisations import create_organisation
    from regbatch.db.restaurants import import_restaurants

    migrate.upgrade(url)
    rows = json.loads((ROOT / "examples" / "restaurants.json").read_text())
    template = rows[0]  # a full menu: images, tags and option sets, so all 12 steps run
    with session_scope() as session:
        org = create_organisation(session, f"bench-{secrets.token_hex(3)}")
        made = []
        run = secrets.token_hex(2)  # the sandbox keeps subdomains across runs of one bench
        for i in range(n):
            row = {
                **template,
                "name": f"Bench Restaurant {i:04d} {run}",
                "email": f"owner{i:04d}-{secrets.token_hex(2)}@example.com",
            }
            row.pop("subdomain", None)
            made.append(row)
        restaurants = import_restaurants(session, org.id, made)
        return org.id, [r.id for r in restaurants]


def batch_settings(all_steps_off: bool) -> dict[str, Any]:
    from regbatch.steps import STEPS

    settings: dict[str, Any] = {"onboarding": {"create_user": True, "sync": True}}
    if all_steps_off:
        settings["steps"] = {s.key.value: False for s in STEPS}
    return settings


async def asyncio_baseline(restaurant_ids: list[Any], org_id: Any, c: int) -> float:
    """The same HTTP calls in graph order, c restaurants at a time: no Prefect, no database."""
    from regbatch.config import build_config
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Restaurant
    from regbatch.db.restaurants import restaurant_record
    from regbatch.planning import Run, StepState, next_decisions
    from regbatch.platform import PlatformClient, build_request
    from regbatch.statuses import StepStatus
    from regbatch.steps import STEPS

    with session_scope() as session:
        configs = {
            rid: build_config(
                restaurant_record(session.get_one(Restaurant, rid)), batch_settings(False)
            )
            for rid in restaurant_ids
        }
    client = PlatformClient.from_settings()
    semaphore = asyncio.Semaphore(c)
    run_tag = secrets.token_hex(4)

    async def one(rid: Any) -> None:
        config = configs[rid]
        states: dict[str, StepState] = {s.key: StepState(StepStatus.PENDING) for s in STEPS}
        results: dict[Any, dict[str, Any]] = {}
        async with semaphore:
            while True:
                runs = [d.key for d in next_decisions(states, config) if isinstance(d, Run)]
                if not runs:
                    return

                async def call(key: Any) -> None:
                    payload = build_request(
                        key, config, results, restaurant_id=str(rid), password="Baseline-Passw0rd!"
                    )
                    results[key] = await client.run_step(
                        key,
                        payload,
                        organisation_id=str(org_id),
                        idempotency_key=f"baseline-{run_tag}-{rid}:{key}",
                        timeout_s=120,
                    )
                    states[key] = StepState(StepStatus.COMPLETED, results[key])

                for key in runs:
                    states[key] = StepState(StepStatus.IN_PROGRESS)
                await asyncio.gather(*(call(k) for k in runs))

    start = time.perf_counter()
    await asyncio.gather(*(one(r) for r in restaurant_ids))
    wall = time.perf_counter() - start
    await client.aclose()
    return wall


def cpu_seconds(pid: int | None, with_children: bool = True) -> float:
    """User + system CPU seconds of a process (and its children), from /proc (0 if unknown)."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        for p in process_tree(pid, with_children):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return 0.0
    return total


def postgres_cpu_seconds() -> float:
    """User + system CPU seconds of the local PostgreSQL: its live processes, and (in the
    postmaster's children fields) the backends that exited, so connections that came and went
    between two readings count too. Every database on the server counts."""
    processes: dict[str, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue  # gone meanwhile
        if head.endswith("(postgres"):
            processes[stat.parent.name] = tail.split()
    ticks = 0
    for fields in processes.values():
        ticks += int(fields[11]) + int(fields[12])
        if fields[1] not in processes:  # the postmaster: add its reaped children
            ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def use_bench_environment(tmp: Path, account_spacing_s: float = 0.0) -> None:
    """The settings every benchmark runs with: offline Prefect, the sandbox's key, fast image
    polling, a data directory of its own, only warnings on the console."""
    os.environ.update(
        {
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "REGBATCH_PLATFORM_SERVICE_KEY": SERVICE_KEY,
            "REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS": str(account_spacing_s),
            "REGBATCH_IMAGE_POLL_INTERVAL_SECONDS": "0.05",
            "REGBATCH_DATA_DIR": str(tmp / "data"),
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        }
    )


def create_bench_batch(
    org_id: Any, restaurant_ids: list[Any], c: int, all_steps_off: bool, name: str = "bench"
) -> Any:
    """A parallel batch of these restaurants, c at once, whose breaker never trips."""
    from regbatch.services.batches import create_batch

    return create_batch(
        org_id,
        name=f"{name} {len(restaurant_ids)}x{c}",
        restaurant_ids=restaurant_ids,
        execution_mode="parallel",
        concurrency=c,
        settings=batch_settings(all_steps_off),
        breaker_min_finished=len(restaurant_ids) + 1,
    )


def count_ledger_transactions() -> dict[str, int]:
    """From now on, count the runner's ledger transactions by the function each one runs, and
    (as "SQL statements") every statement this process sends to the database."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from regbatch.runner import ledger

    counts: dict[str, int] = {}
    transact = ledger.transact

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", "other")
        counts[name] = counts.get(name, 0) + 1
        return await transact(fn, *args, **kwargs)

    def statement(*_: Any) -> None:
        counts["SQL statements"] = counts.get("SQL statements", 0) + 1

    ledger.transact = counted
    event.listen(Engine, "before_cursor_execute", statement)
    return counts


def run_batch_flow(
    org_id: Any, restaurant_ids: list[Any], c: int, all_steps_off: bool
) -> tuple[float, Any]:
    from regbatch.api.running import run_batch
    from regbatch.heap import claim_process

    claim_process()  # this process is the runner, as the CLI's or a deployment's run is
    batch_id = create_bench_batch(org_id, restaurant_ids, c, all_steps_off)
    start = time.perf_counter()
    detail = run_batch(batch_id)
    return time.perf_counter() - start, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="restaurants")
    parser.add_argument("--c", type=int, default=25, help="concurrency")
    parser.add_argument("--latency-ms", type=float, default=1000, help="sandbox latency per step")
    parser.add_argument(
        "--cost",
        action="store_true",
        help="also run with every step disabled (orchestration cost split)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--account-spacing-s",
        type=float,
        default=0.0,
        help="the account-creation limit, on both sides (the sandbox refuses faster creations)",
    )
    add_server_arguments(parser)
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use Prefect's embedded SQLite server (no PREFECT_API_URL)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="regbatch-bench-"))
    use_bench_environment(tmp, args.account_spacing_s)
    server = None
    if args.embedded:
        os.environ.pop("PREFECT_API_URL", None)
        os.environ["PREFECT_HOME"] = str(tmp / "prefect-home")
        os.environ["REGBATCH_EMBEDDED_MAX_CONCURRENCY"] = str(args.c)
    elif args.start_server or args.scaled_server:
        server = start_server(args, tmp)
        os.environ["PREFECT_API_URL"] = server.url
    elif not os.environ.get("PREFECT_API_URL"):
        raise SystemExit(
            "set PREFECT_API_URL, or pass --start-server, --scaled-server or --embedded"
        )
    sandbox, sandbox_url = start_sandbox(args.latency_ms, args.account_spacing_s)
    os.environ["REGBATCH_PLATFORM_URL"] = sandbox_url
    try:
        report(args, server, sandbox.pid)
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # ship the run's logs before the server goes
        drop_bench_schema()
        os.killpg(sandbox.pid, signal.SIGTERM)
        if server is not None:
            server.stop()


def report(args: argparse.Namespace, server: PrefectServer | None, sandbox_pid: int) -> None:
    from regbatch.steps import critical_path_length

    n, c, latency = args.n, args.c, args.latency_ms / 1000
    spacing = args.account_spacing_s
    org_id, restaurant_ids = prepare_database(n, False)
    backend = "embedded SQLite" if args.embedded else "PostgreSQL"
    if args.scaled_server:
        backend += f", scaled: Redis messaging, {args.api_workers} API workers, services apart"
    print(
        f"N={n} restaurants x 12 steps, c={c}, step latency {args.latency_ms:.0f} ms, "
        f"account spacing {spacing:g} s, Prefect server on {backend}"
    )
    if spacing:
        # one account at a time, `spacing` apart: the last starts after (N - 1) spacings, then
        # runs its whole critical path; the goal's bound is N x spacing + the critical path
        limit = n * spacing + critical_path_length() * latency
        print(
            f"account-limited limit     {limit:8.1f} s  (N x {spacing:g} s + "
            f"{critical_path_length()} steps x {latency:.3f} s)"
        )
    else:
        limit = math.ceil(n / c) * critical_path_length() * latency
        print(
            f"physical limit            {limit:8.1f} s  (ceil(N/c)={math.ceil(n / c)} x "
            f"{critical_path_length()} steps x {latency:.3f} s)"
        )
    baseline = 0.0
    if not args.no_baseline and not spacing:
        baseline = asyncio.run(asyncio_baseline(restaurant_ids, org_id, c))
        print(
            f"asyncio baseline          {baseline:8.1f} s  (same HTTP calls, no Prefect, "
            "no database)"
        )
    pids: dict[str, int | None] = {
        "this process": os.getpid(),
        **(server.pids if server is not None else {"Prefect server": None}),
        "sandbox": sandbox_pid,
    }

    def cpu_now() -> dict[str, float]:  # the server and sandbox are children of this process
        return {name: cpu_seconds(pid, name != "this process") for name, pid in pids.items()}

    transactions = count_ledger_transactions()
    cpu_before = cpu_now()
    wall, detail = run_batch_flow(org_id, restaurant_ids, c, False)
    cpu = {name: seconds - cpu_before[name] for name, seconds in cpu_now().items()}
    counted = dict(transactions)
    statements = counted.pop("SQL statements", 0)
    print(
        f"batch flow                {wall:8.1f} s  status={detail.status} "
        f"completed={detail.completed}/{n} failed={detail.failed}"
    )
    print(
        f"ledger transactions       {sum(counted.values()) / n:8.1f} per restaurant  ("
        + ", ".join(
            f"{name} {count / n:.2f}"
            for name, count in sorted(counted.items(), key=lambda kv: -kv[1])
            if count / n >= 0.05
        )
        + f"), {statements / n:.1f} SQL statements"
    )
    if limit:
        print(f"ratio to the limit        {wall / limit:8.2f} x")
    if spacing:
        print_account_gaps()
    print_after_run(server)
    steps = sum(s.status == "completed" for j in detail.jobs for s in j.steps)
    cores = os.cpu_count() or 1
    print(f"steps completed           {steps:8d}")
    print(
        "CPU during the batch flow "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cpu.items() if seconds)
        + f" (of {cores * wall:.0f} core-seconds on {cores} cores)"
    )
    if args.cost:
        _, more_ids = prepare_database(n, True)
        empty_wall, empty = run_batch_flow(
            org_id=_org_of(more_ids), restaurant_ids=more_ids, c=c, all_steps_off=True
        )
        per_restaurant = empty_wall / n
        per_step = max(wall - empty_wall - baseline, 0) / max(steps, 1)
        print(f"batch flow, no steps      {empty_wall:8.1f} s  status={empty.status}")
        print(
            f"orchestration/restaurant  {per_restaurant * 1000:8.0f} ms  (subflow + ledger, "
            "steps disabled: wall / N)"
        )
        print(
            f"orchestration/step        {per_step * 1000:8.1f} ms  ((wall - no-steps wall - "
            "baseline) / steps)"
        )
    own_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS, this process    {own_peak_mb:8.0f} MB")
    for name, pid in (server.pids if server is not None else {}).items():
        print(f"peak RSS, {name:<15} {peak_rss_mb(pid) or 0:8.0f} MB")


def print_account_gaps() -> None:
    """How far apart the account creations reached the platform (its limiter counts from there)."""
    import itertools
    from datetime import datetime

    from regbatch.sandbox.control import SandboxControl

    control = SandboxControl(os.environ["REGBATCH_PLATFORM_URL"], SERVICE_KEY)
    times = sorted(
        datetime.fromisoformat(r["received_at"])
        for r in control.requests()
        if r["step"] == "account_registration" and r["outcome"] == "performed"
    )
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    refused = sum(
        r["step"] == "account_registration" and r["status"] == 429 for r in control.requests()
    )
    if gaps:
        print(
            f"accounts created          {len(times):8d}  gaps min {min(gaps):.2f} s, mean "
            f"{sum(gaps) / len(gaps):.2f} s, max {max(gaps):.2f} s; {refused} refused with 429"
        )


def _org_of(restaurant_ids: list[Any]) -> Any:
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Restaurant

    with session_scope() as session:
        return session.get(Restaurant, restaurant_ids[0]).organisation_id  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
