"""One archive from start to end in this process: list, plan, copy and upload, complete.

The Dagster job spreads these same steps over several processes; this module runs them in
one, for scripts, tests and benchmarks. A failure aborts the upload before it is raised.
"""

import logging
import time
from dataclasses import dataclass

from .batch import BatchResult, run_batch, run_final_part
from .plan import DEFAULT_SCRATCH_PREFIX, NamingOptions, Plan, PlanSettings, build_plan
from .s3 import (
    S3PartStore,
    abort_upload,
    begin_upload,
    check_destination,
    complete_upload,
    list_source,
)

log = logging.getLogger(__name__)


@dataclass
class ArchiveReport:
    """What one archive cost."""

    plan: Plan
    archive_crc: int
    results: list[BatchResult]
    read_bytes: int
    uploaded_bytes: int
    requests: dict[str, int]
    seconds: float


def build_archive(
    client,
    source_bucket: str,
    source_prefix: str,
    destination_bucket: str,
    destination_key: str,
    settings: PlanSettings = PlanSettings(),
    naming: NamingOptions = NamingOptions(),
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    threads: int = 10,
    scratch_root: str = DEFAULT_SCRATCH_PREFIX,
) -> ArchiveReport:
    """Archive every object under s3://source_bucket/source_prefix into one ZIP object.
    Temporary objects live under scratch_root in the destination bucket, and are gone when
    this returns or raises."""
    started = time.monotonic()
    objects = list_source(client, source_bucket, source_prefix, include, exclude)
    check_destination(client, destination_bucket)
    own_key = frozenset({destination_key}) if destination_bucket == source_bucket else frozenset()
    plan = build_plan(objects, source_bucket, source_prefix, settings, naming, own_key,
                      destination_bucket, scratch_root)

    target = begin_upload(client, destination_bucket, destination_key)
    store = S3PartStore(client, source_bucket, target, plan.scratch_bucket, plan.scratch_prefix)
    try:
        results = [run_batch(store, batch, threads) for batch in plan.batches]
        final = run_final_part(store, plan, results)
        complete_upload(client, target, final.parts, final.archive_crc, plan.archive_size)
    except BaseException:
        abort_upload(client, target)
        raise

    read = final.read_bytes + sum(r.read_bytes + r.crc_read_bytes for r in results)
    uploaded = final.uploaded_bytes + sum(r.uploaded_bytes for r in results)
    return ArchiveReport(plan, final.archive_crc, results, read, uploaded,
                         dict(store.requests), time.monotonic() - started)
