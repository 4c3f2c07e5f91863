"""``python -m bench``: run the benchmark suite and write its report."""

from __future__ import annotations

import argparse
import ast
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.processes import REPO_ROOT
from bench.scenarios import FULL, QUICK
from bench.suite import SCENARIOS, run_suite


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Tickmark's benchmarks, side by side with a reference server.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts and short steps (smoke)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only these scenario groups (repeatable)",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL database to connect to while creating the bench's own",
    )
    parser.add_argument("--database", default="tickmark_bench")
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin servers and generator"
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="LABEL",
        help="sample the server with py-spy during a step, e.g. f50-tickmark@10000",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one size or rate of the scale, e.g. step_secs=10",
    )
    parser.add_argument(
        "--from",
        dest="from_results",
        type=Path,
        metavar="RESULTS_JSON",
        help="run nothing: write the report of an earlier run's results.json",
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help="write the table into docs/performance.md and the plot beside it",
    )
    args = parser.parse_args()

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or REPO_ROOT / "bench" / "results" / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.from_results is not None:
        results = json.loads(args.from_results.read_text())
    else:
        results = asyncio.run(_run(parser, args, out_dir))
    lines = report.summary_lines(results)
    print("\n".join(lines))
    tables = report.markdown(results)
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    (out_dir / "tables.md").write_text(tables)
    plot = report.plot(results, out_dir / "latency.png")
    if args.docs:
        report.update_docs(tables, plot)
    print(f"results: {out_dir}", file=sys.stderr)
    return 0


async def _run(
    parser: argparse.ArgumentParser, args: argparse.Namespace, out_dir: Path
) -> dict[str, Any]:
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    scale = QUICK if args.quick else FULL
    for override in args.set:
        name, _, value = override.partition("=")
        if name not in {f.name for f in dataclasses.fields(scale)}:
            parser.error(f"--set: no size or rate named {name!r}")
        scale = dataclasses.replace(scale, **{name: ast.literal_eval(value)})
    return await run_suite(
        scale=scale,
        admin_url=args.admin_url,
        database_name=args.database,
        out_dir=out_dir,
        only=tuple(args.only or SCENARIOS),
        server_cpus="0" if pin else None,
        generator_cpus="1" if pin else None,
        profile=frozenset(args.profile),
    )


if __name__ == "__main__":
    sys.exit(main())
