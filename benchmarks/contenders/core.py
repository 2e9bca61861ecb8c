"""(c) and (d): the s3zip core in this process (build_archive), head-stream or zero-stream."""

from s3zip_dagster.core.model import HEAD_STREAM, ZERO_STREAM, PlanSettings
from s3zip_dagster.core.runner import build_archive

STRATEGY = {"c": HEAD_STREAM, "d": ZERO_STREAM}


def run(client, job) -> dict:
    report = build_archive(client, job.source_bucket, job.prefix, job.destination_bucket,
                           job.destination_key,
                           settings=PlanSettings(strategy=STRATEGY[job.contender]),
                           threads=job.threads)
    plan = report.plan
    return {
        "entries": len(plan.entries),
        "parts": plan.part_count,
        "batches": len(plan.batches),
        "temporary_objects": len(plan.temps()),
        "copied_bytes": plan.copied_bytes,
        "extra_copied_bytes": plan.extra_copied_bytes,
        "core_bytes_through": report.read_bytes + report.uploaded_bytes,
        "core_requests": report.requests,
    }
