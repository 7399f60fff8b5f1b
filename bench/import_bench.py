"""Benchmark: `regbatch restaurants import` of a generated file of N restaurants (10,000 by
default, made from the samples), into a fresh PostgreSQL schema.

Prints the file's size, then for each run (the first creates every restaurant, the second finds
them all unchanged) the wall and CPU time and the peak memory (RSS high-water mark) of the
import process, the real console script in a subprocess of its own.

Needs PostgreSQL (REGBATCH_BENCH_DATABASE_URL, default the local `test` database; a schema of its
own is created and dropped).

    .venv/bin/python bench/import_bench.py --n 10000 --format json
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASE_URL = os.environ.get(
    "REGBATCH_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def rows(n: int) -> list[dict[str, Any]]:
    """N restaurants made from the samples (about 3 KB a row), each with its own name and email."""
    samples = json.loads((ROOT / "examples" / "restaurants.json").read_text())
    made = []
    for i in range(n):
        row = copy.deepcopy(samples[i % len(samples)])
        row["name"] = f"{row['name']} {i}"
        row["email"] = f"owner-{i}@bench.example.com"
        row.pop("subdomain", None)
        made.append(row)
    return made


def write_file(path: Path, made: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        path.write_text(json.dumps(made), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in made), encoding="utf-8")
    else:
        columns = sorted({k for r in made for k in r})
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            for r in made:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()}
                )


def schema_url(schema: str) -> str:
    separator = "&" if "?" in BASE_URL else "?"
    return f"{BASE_URL}{separator}options=-csearch_path%3D{schema}"


def regbatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "regbatch"), *args], env=env, capture_output=True, text=True, check=True
    )


def timed_import(
    env: dict[str, str], path: Path, org: str
) -> tuple[float, float, float, dict[str, Any]]:
    """(wall seconds, CPU seconds, peak RSS MB, JSON answer) of one import in a process of its
    own (CPU time says what wall time hides on a busy machine)."""
    # VmHWM: the high-water mark of this process's own memory (ru_maxrss would include the
    # memory of the benchmark it was forked from)
    code = (
        "import sys; from regbatch.api.cli import main; sys.argv = sys.argv[1:]\n"
        "try: main()\nfinally: print(next(line.split()[1] for line in open('/proc/self/status')"
        " if line.startswith('VmHWM:')), file=sys.stderr)"
    )
    args = ["regbatch", "restaurants", "import", str(path), "--org", org, "--json"]
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"import failed:\n{done.stderr}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return wall, cpu, peak_kb / 1024, json.loads(done.stdout)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--format", choices=("json", "jsonl", "csv"), default="json")
    options = parser.parse_args()
    from sqlalchemy import create_engine, text

    schema = f"regbatch_import_bench_{secrets.token_hex(3)}"
    engine = create_engine(BASE_URL)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    env = {**os.environ, "REGBATCH_DATABASE_URL": schema_url(schema)}
    env.setdefault("REGBATCH_DATA_DIR", tempfile.mkdtemp(prefix="regbatch-import-bench-"))
    try:
        regbatch(env, "db", "upgrade")
        regbatch(env, "org", "create", "Import Bench")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"restaurants.{options.format}"
            write_file(path, rows(options.n), options.format)
            print(f"{options.n} rows, {options.format}, {path.stat().st_size / 1e6:.1f} MB")
            for run in ("first import", "same file again"):
                wall, cpu, peak, answer = timed_import(env, path, "Import Bench")
                counts = ", ".join(f"{answer[k]} {k}" for k in ("created", "updated", "unchanged"))
                print(f"{run}: {wall:.1f} s ({cpu:.1f} s CPU), peak RSS {peak:.0f} MB ({counts})")
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


if __name__ == "__main__":
    main()
