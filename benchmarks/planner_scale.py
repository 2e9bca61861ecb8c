"""Planner scale: build_plan on a synthetic listing, in a process of its own.

`python -m benchmarks.planner_scale ENTRIES` prints one JSON line: the seconds build_plan
took and the process's peak memory (the listing included, as a planning step holds it).
Sizes are mixed: 90% from 1 KiB to 1 MiB, 8% from 1 to 5 MiB, 2% from 5 MiB to 256 MiB,
each log-uniform, so the zero-stream plan also has to assemble group objects.
"""

import json
import math
import random
import resource
import sys
import time

from s3zip_dagster.core.limits import KiB, MiB
from s3zip_dagster.core.plan import PlanSettings, SourceObject, build_plan

MTIME = 1_767_225_600  # 2026-01-01 UTC


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def listing(count: int, seed: int = 1_000_000) -> list[SourceObject]:
    rng = random.Random(seed)
    objects = []
    for i in range(count):
        draw = rng.random()
        if draw < 0.90:
            size = _log_uniform(rng, KiB, MiB)
        elif draw < 0.98:
            size = _log_uniform(rng, MiB, 5 * MiB)
        else:
            size = _log_uniform(rng, 5 * MiB, 256 * MiB)
        objects.append(SourceObject(f"data/{i // 1000:04d}/obj-{i:07d}.bin", size,
                                    f'"{i:032x}"', MTIME))
    return objects


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    objects = listing(count)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.monotonic()
    plan = build_plan(objects, "bench-planner", "data/", PlanSettings(), scratch_bucket="x")
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({
        "entries": len(plan.entries),
        "seconds": seconds,
        "peak_memory": peak,
        "memory_before_planning": before,
        "archive_bytes": plan.archive_size,
        "parts": plan.part_count,
        "temporary_objects": len(plan.temps()),
        "batches": len(plan.batches),
        "strategy": plan.settings.strategy,
    }))


if __name__ == "__main__":
    main()
