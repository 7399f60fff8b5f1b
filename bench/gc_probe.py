"""The garbage collector's share of a benchmark: runs another bench script in this process and
counts, per generation, the collections and the time they took, before and after regbatch.heap
froze the start-up heap (if it did), beside the process's CPU.

    .venv/bin/python bench/gc_probe.py bench/batch_bench.py --n 200 --c 25 --latency-ms 0 \
        --start-server --no-baseline
    .venv/bin/python bench/gc_probe.py bench/rest_bench.py --detail-only --requests 200
"""

from __future__ import annotations

import atexit
import gc
import runpy
import sys
import time
from typing import Any

# (generation, after the freeze) -> [collections, seconds]
counts: dict[tuple[int, bool], list[float]] = {}
started: dict[int, float] = {}


def frozen() -> bool:
    heap = sys.modules.get("regbatch.heap")
    return bool(heap and heap._frozen)  # not gc.get_freeze_count(): it walks every frozen object


def on_collection(phase: str, info: dict[str, Any]) -> None:
    generation = info["generation"]
    if phase == "start":
        started[generation] = time.perf_counter()
        return
    entry = counts.setdefault((generation, frozen()), [0, 0.0])
    entry[0] += 1
    entry[1] += time.perf_counter() - started.pop(generation, time.perf_counter())


def report(cpu_at_start: float) -> None:
    print(f"garbage collector, {sys.argv[0]}:")
    for (generation, after), (n, seconds) in sorted(counts.items(), key=lambda kv: kv[0][::-1]):
        when = "after the freeze " if after else "before any freeze"
        each = 1000 * seconds / n if n else 0.0
        print(
            f"  {when} generation {generation}: {int(n):5d} collections, "
            f"{1000 * seconds:7.0f} ms in all, {each:6.1f} ms each"
        )
    total = sum(seconds for _, seconds in counts.values())
    cpu = time.process_time() - cpu_at_start
    print(f"  in all {total:.2f} s of collection; this process's CPU {cpu:.1f} s")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    gc.callbacks.append(on_collection)
    atexit.register(report, time.process_time())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
