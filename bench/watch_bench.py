"""What the CLI's live view costs at each tick, as a batch grows: the whole batch against the
live page.

`regbatch batch run` and `regbatch batch watch` show a batch while it runs by polling the
database (twice a second; `batch run` in the runner's own process). This builds, in a fresh
schema, batches of each size with their steps in mixed states (`rest_bench.mix_states`: a
quarter completed, failed, running, pending), then times, on each, the read the view made
before (`services.batches.get_batch`: every restaurant with its steps) and the one it makes now
(`services.overview.live_batch`: the batch's row and at most LIVE_ROWS restaurants), with
p50/p95 wall and the CPU per read of this process. Beside them, what `regbatch batch show`
reads now without --all (`services.batches.report_batch`: at most SHOW_ROWS restaurants, the
failed first); before, it read the whole batch too. Needs PostgreSQL
(REGBATCH_BENCH_DATABASE_URL, default the local `test` database; a schema of its own, dropped
at the end).

    .venv/bin/python bench/watch_bench.py [--sizes 100,1000,10000] [--reads 20]
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_schema import bench_schema
from rest_bench import make_batch, mix_states, restaurants, timings


def measure(sizes: list[int], reads: int) -> None:
    from regbatch.api.cli.batch_cmd import SHOW_ROWS
    from regbatch.api.cli.progress import LIVE_ROWS
    from regbatch.db.engine import session_scope
    from regbatch.db.organisations import create_organisation
    from regbatch.services.batches import get_batch, report_batch
    from regbatch.services.overview import live_batch

    with session_scope() as session:
        org = create_organisation(session, f"watch-bench-{secrets.token_hex(3)}").id
    print(f"one tick of the live view, {reads} reads each (p50 / p95 wall, CPU per read)")
    print(
        f"  {'restaurants':>11}  {'whole batch (before)':>30}  {'live page (now)':>28}"
        f"  {'batch show (now)':>28}"
    )
    for size in sizes:
        batch_id = make_batch(org, restaurants(org, size, f"w{size}"), f"watch {size}")
        mix_states(batch_id)
        whole = timings(lambda: get_batch(batch_id), reads)  # noqa: B023
        live = timings(lambda: live_batch(batch_id, LIVE_ROWS), reads)  # noqa: B023
        show = timings(lambda: report_batch(batch_id, SHOW_ROWS), reads)  # noqa: B023
        print(
            f"  {size:>11,}  {whole[0]:8.1f} / {whole[1]:7.1f} ms, {whole[2]:7.1f} ms CPU"
            f"  {live[0]:6.1f} / {live[1]:6.1f} ms, {live[2]:5.1f} ms CPU"
            f"  {show[0]:6.1f} / {show[1]:6.1f} ms, {show[2]:5.1f} ms CPU",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="batch sizes, comma-separated")
    parser.add_argument("--reads", type=int, default=20, help="timed reads of each")
    args = parser.parse_args()
    with bench_schema("watch_bench"):
        measure([int(s) for s in args.sizes.split(",")], args.reads)


if __name__ == "__main__":
    main()
