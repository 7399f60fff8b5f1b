"""Where a process's CPU went, from a py-spy profile: shares by part of the code.

Record the runner of a benchmark (the `batch_bench.py` process) with py-spy while the batch
runs, then summarise the collapsed stacks:

    py-spy record --gil --rate 100 --duration 30 --format raw --pid PID -o runner.raw
    python bench/profile_summary.py runner.raw [other.raw ...]   (or .raw.gz)

Each sample is put in the first part, in the order below, that one of its frames belongs to
(a ledger write made from inside a step task counts as the ledger, an HTTP call of Prefect's
client as Prefect's API calls). With several files, one column per file.
"""

from __future__ import annotations

import argparse
import gzip
from collections import Counter
from pathlib import Path

# (part, path fragments of a frame's file that put a sample in it), the first match wins
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("ledger (regbatch.db, SQLAlchemy, psycopg)", ("regbatch/db/", "regbatch/runner/ledger.py")),
    ("platform HTTP (regbatch.platform, aiohttp)", ("regbatch/platform/", "/aiohttp/")),
    ("artifacts", ("regbatch/tasks/artifacts.py",)),
    ("Prefect: events", ("prefect/events/",)),
    ("Prefect: logs", ("prefect/logging/",)),
    ("Prefect: API calls", ("prefect/client/",)),
    ("Prefect: task engine", ("prefect/task_engine.py", "prefect/tasks.py")),
    ("Prefect: flow engine", ("prefect/flow_engine.py", "prefect/flows.py")),
    ("Prefect: other", ("/prefect/",)),
    ("regbatch: other", ("regbatch/",)),
]
OTHER = "other (event loop, threads, libraries)"


def part_of(stack: str) -> str:
    for part, fragments in PARTS:
        if any(fragment in stack for fragment in fragments):
            return part
    return OTHER


def summarise(path: Path) -> tuple[Counter[str], int]:
    """Samples per part and in all, from py-spy's raw (collapsed) output."""
    counts: Counter[str] = Counter()
    total = 0
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    for line in raw.decode().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        counts[part_of(stack)] += int(number)
        total += int(number)
    return counts, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path, help="py-spy --format raw files")
    args = parser.parse_args()
    columns = [summarise(path) for path in args.profiles]
    width = max(len(p) for p, _ in PARTS) + 2
    header = "".join(f"{path.name[:22]:>24}" for path in args.profiles)
    print(f"{'part of the code':<{width}}{header}")
    for part in [p for p, _ in PARTS] + [OTHER]:
        cells = "".join(
            f"{100 * counts[part] / max(total, 1):>21.1f} % " for counts, total in columns
        )
        print(f"{part:<{width}}{cells}")
    totals = "".join(f"{total:>22d}  " for _, total in columns)
    print(f"{'samples holding the GIL':<{width}}{totals}")


if __name__ == "__main__":
    main()
