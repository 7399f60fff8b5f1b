"""regbatch beside Prefect alone, in the same run on the same server: the four ratios of the goal.

Each round runs, one after the other on one Prefect server (waiting after each until the server
has worked off its backlog and idles), the same shape of work twice: once as regbatch's batch
flow against the sandbox platform (`batch_bench.py`'s run), once as Prefect alone
(`prefect_floor.py`'s N async subflows of 12 async tasks in the step graph's levels, no database,
no HTTP). Then it prints each figure beside its baseline and the ratio:

* the batch at --latency-ms (default 1 s) against Prefect alone at the same latency (goal 1.1x);
* per restaurant, instant steps: regbatch with every step disabled (a subflow and its ledger
  writes) against an empty subflow (goal 1.3x);
* per step, instant steps: (batch - batch without steps) / steps against (12 tasks - no task) /
  tasks; regbatch's includes the platform call over HTTP (goal 1.5x);
* the runner's CPU per restaurant in the timed batch (this process: the flows, the ledger's
  database threads, the HTTP client) against Prefect's client in the same shape (goal 1.3x).

Beside them, for the timed batch, where the rest of the machine's CPU went: the Prefect
server, PostgreSQL (every database on it: Prefect's and regbatch's ledger), the sandbox
platform (the lab's stand-in for a remote platform; Prefect alone does not call it), and how
busy both cores were. On 2 cores every CPU-second of any of them is wall time for the batch.

Both sides run in this process, whose start-up heap is frozen once before the first round
(regbatch.heap, as a runner of regbatch's own does at a batch's start): the same collector for
both.

    .venv/bin/python bench/floor_ratio.py --n 200 --c 25 --start-server
    .venv/bin/python bench/floor_ratio.py --n 200 --c 25 --scaled-server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_bench import (
    SERVICE_KEY,
    add_server_arguments,
    cpu_seconds,
    drop_bench_schema,
    machine_jiffies,
    postgres_cpu_seconds,
    prepare_database,
    run_batch_flow,
    start_sandbox,
    start_server,
    until_idle,
    use_bench_environment,
)
from prefect_floor import measure

GOALS = {"batch": 1.1, "restaurant": 1.3, "step": 1.5, "cpu": 1.3}


@dataclass(frozen=True)
class Run:
    """One timed run: its wall time, the CPU seconds each part spent, how busy the machine was."""

    wall: float
    runner: float
    server: float
    postgres: float
    sandbox: float
    busy: float
    """Of both cores' time during the run, the share not idle (0 to 1)."""


def timed(pids: dict[str, int], sandbox_pid: int, run: Callable[[], float]) -> Run:
    """One run, measured; then wait for the server to idle."""

    def reading() -> tuple[float, ...]:
        return (
            cpu_seconds(os.getpid(), False),
            sum(map(cpu_seconds, pids.values())),
            postgres_cpu_seconds(),
            cpu_seconds(sandbox_pid),
            *machine_jiffies(),
        )

    before = reading()
    wall = run()
    after = reading()
    until_idle(pids)
    runner, server, postgres, sandbox, busy, ticks = (
        a - b for a, b in zip(after, before, strict=True)
    )
    return Run(wall, runner, server, postgres, sandbox, busy / ticks if ticks else 0.0)


def regbatch_run(n: int, c: int, all_steps_off: bool) -> Callable[[], float]:
    def run() -> float:
        org_id, ids = prepare_database(n, all_steps_off)
        wall, detail = run_batch_flow(org_id, ids, c, all_steps_off)
        if detail.completed != n:
            raise SystemExit(f"the batch ended {detail.status} with {detail.completed}/{n} done")
        run.steps = sum(s.status == "completed" for j in detail.jobs for s in j.steps)  # type: ignore[attr-defined]
        return wall

    return run


def prefect_run(n: int, c: int, tasks: int, step_s: float) -> Callable[[], float]:
    return lambda: asyncio.run(measure(n, c, tasks, step_s))


def one_round(args: argparse.Namespace, pids: dict[str, int], sandbox_pid: int) -> dict[str, Any]:
    from regbatch.sandbox.control import SandboxControl

    control = SandboxControl(os.environ["REGBATCH_PLATFORM_URL"], SERVICE_KEY)
    n, c, latency = args.n, args.c, args.latency_ms / 1000
    figures: dict[str, Any] = {}
    control.set_latency(args.latency_ms)
    figures["prefect_batch"] = timed(pids, sandbox_pid, prefect_run(n, c, 12, latency))
    figures["regbatch_batch"] = timed(pids, sandbox_pid, regbatch_run(n, c, False))
    control.set_latency(0)
    figures["prefect_empty"] = timed(pids, sandbox_pid, prefect_run(n, c, 0, 0))
    figures["prefect_instant"] = timed(pids, sandbox_pid, prefect_run(n, c, 12, 0))
    figures["regbatch_empty"] = timed(pids, sandbox_pid, regbatch_run(n, c, True))
    instant = regbatch_run(n, c, False)
    figures["regbatch_instant"] = timed(pids, sandbox_pid, instant)
    figures["steps"] = instant.steps  # type: ignore[attr-defined]
    return figures


def print_round(number: int, args: argparse.Namespace, f: dict[str, Any]) -> None:
    n = args.n
    ours: Run = f["regbatch_batch"]
    theirs: Run = f["prefect_batch"]
    timed_run = f"{args.latency_ms:.0f} ms steps"
    rows: list[tuple[str, float, float, str, str | None]] = [
        (f"N={n}, c={args.c}, {timed_run}: wall", ours.wall, theirs.wall, "s", "batch"),
        (
            "per restaurant, instant steps",
            1000 * f["regbatch_empty"].wall / n,
            1000 * f["prefect_empty"].wall / n,
            "ms",
            "restaurant",
        ),
        (
            "per step, instant steps",
            1000 * (f["regbatch_instant"].wall - f["regbatch_empty"].wall) / max(f["steps"], 1),
            1000 * (f["prefect_instant"].wall - f["prefect_empty"].wall) / (12 * n),
            "ms",
            "step",
        ),
        (f"CPU per restaurant, {timed_run}: runner", *_per(n, ours.runner, theirs.runner), "cpu"),
        (f"CPU per restaurant, {timed_run}: server", *_per(n, ours.server, theirs.server), None),
        (
            f"CPU per restaurant, {timed_run}: PostgreSQL",
            *_per(n, ours.postgres, theirs.postgres),
            None,
        ),
        (f"CPU per restaurant, {timed_run}: sandbox", *_per(n, ours.sandbox, theirs.sandbox), None),
        (f"both cores busy, {timed_run}", 100 * ours.busy, 100 * theirs.busy, "%", None),
    ]
    print(f"round {number}")
    print(f"  {'figure':<48}{'regbatch':>12}{'Prefect alone':>16}{'ratio':>8}  goal")
    for label, mine, baseline, unit, goal in rows:
        # Prefect alone never calls the sandbox: its figure is the idle server's, no baseline
        compared = baseline and not label.endswith("sandbox")
        ratio = f"{mine / baseline:>7.2f}x" if compared else f"{'':>8}"
        verdict = ""
        if goal is not None:
            met = baseline and mine / baseline <= GOALS[goal]
            verdict = f"<= {GOALS[goal]:.1f}x " + ("met" if met else "not met")
        print(f"  {label:<48}{mine:>9.1f} {unit:<2}{baseline:>13.1f} {unit:<2}{ratio}  {verdict}")


def _per(n: int, mine: float, baseline: float) -> tuple[float, float, str]:
    """CPU seconds of a run as ms per restaurant, both sides."""
    return 1000 * mine / n, 1000 * baseline / n, "ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="restaurants (and subflows)")
    parser.add_argument("--c", type=int, default=25, help="concurrency")
    parser.add_argument("--latency-ms", type=float, default=1000, help="step latency, timed run")
    parser.add_argument("--rounds", type=int, default=1)
    add_server_arguments(parser)
    args = parser.parse_args()
    if not (args.start_server or args.scaled_server):
        raise SystemExit("pass --start-server or --scaled-server: both sides need the same server")
    tmp = Path(tempfile.mkdtemp(prefix="regbatch-ratio-"))
    use_bench_environment(tmp)
    server = start_server(args, tmp)
    os.environ["PREFECT_API_URL"] = server.url
    sandbox, sandbox_url = start_sandbox(0)
    os.environ["REGBATCH_PLATFORM_URL"] = sandbox_url
    kind = "scaled server" if args.scaled_server else "server"
    print(
        f"regbatch beside Prefect alone, same Prefect {kind} on PostgreSQL, N={args.n}, "
        f"c={args.c}; each run waits for the server to idle after the one before"
    )
    import regbatch.flows.batch  # noqa: F401  (imported before the freeze, as in a runner)
    from regbatch.heap import claim_process, freeze_start_up_heap

    claim_process()
    freeze_start_up_heap()
    try:
        until_idle(server.pids)
        for number in range(1, args.rounds + 1):
            started = time.monotonic()
            figures = one_round(args, server.pids, sandbox.pid)
            print_round(number, args, figures)
            print(f"  (round took {time.monotonic() - started:.0f} s)", flush=True)
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
        drop_bench_schema()
        os.killpg(sandbox.pid, signal.SIGTERM)
        server.stop()


if __name__ == "__main__":
    main()
