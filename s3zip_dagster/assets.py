"""Dagster assets: the source listing, the zip plan and the archive.

This layer only wires the core together: every decision about bytes, parts and S3 calls is
made in `s3zip_dagster.core`.
"""

import resource
import time
from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    DynamicOut,
    DynamicOutput,
    MetadataValue,
    OpExecutionContext,
    Output,
    asset,
    graph_asset,
    op,
)
from dagster_aws.s3 import S3Resource

from .core.batch import BatchResult, run_batch, run_final_part
from .core.errors import SourceError
from .core.plan import Batch, Plan, SourceObject, build_plan
from .core.s3 import (
    S3PartStore,
    UploadTarget,
    abort_upload,
    begin_upload,
    check_destination,
    complete_upload,
    list_source,
)
from .resources import ArchiveRequest, archive_client


@asset(description="Every source object to archive: key, size, ETag, LastModified, class.")
def source_listing(
    context: AssetExecutionContext, s3: S3Resource, archive_request: ArchiveRequest
) -> Output[list[SourceObject]]:
    req = archive_request
    objects = list_source(s3.get_client(), req.source_bucket, req.source_prefix,
                          req.include, req.exclude)
    if not objects:
        raise SourceError(
            f"no objects under s3://{req.source_bucket}/{req.source_prefix} match the include/"
            "exclude patterns; check the prefix and patterns. Nothing was written.")
    largest = max(objects, key=lambda o: o.size)
    total = sum(o.size for o in objects)
    context.log.info(f"listed {len(objects)} objects, {total} B, under "
                     f"s3://{req.source_bucket}/{req.source_prefix}")
    return Output(objects, metadata={
        "object_count": len(objects),
        "total_bytes": total,
        "largest_object": f"s3://{req.source_bucket}/{largest.key} ({largest.size} B)",
    })


@asset(description="Layout of the archive: entry names, offsets, parts and batches.")
def zip_plan(
    context: AssetExecutionContext,
    source_listing: list[SourceObject],
    s3: S3Resource,
    archive_request: ArchiveRequest,
) -> Output[Plan]:
    req = archive_request
    check_destination(s3.get_client(), req.destination_bucket)
    exclude = frozenset({req.destination_key}) if req.destination_bucket == req.source_bucket \
        else frozenset()
    scratch_bucket, scratch_root = req.scratch_location
    plan = build_plan(source_listing, req.source_bucket, req.source_prefix,
                      req.plan_settings(), req.naming(), exclude, scratch_bucket, scratch_root)
    for key in plan.skipped_keys:
        context.log.info(f"left out s3://{req.source_bucket}/{key} (the archive itself or the "
                         "prefix's folder marker)")
    return Output(plan, metadata={
        "entries": len(plan.entries),
        "archive_bytes": plan.archive_size,
        "copy_parts": plan.copy_parts,
        "upload_parts": plan.upload_parts,
        "bytes_copied_by_s3": plan.copied_bytes,
        "bytes_through_workers": plan.read_bytes + plan.uploaded_bytes,
        "extra_bytes_copied_by_s3": plan.extra_copied_bytes,
        "temporary_objects": len(plan.temps()),
        "strategy": plan.settings.strategy,
        "batches": len(plan.batches),
        "zip64": plan.zip64,
    })


@dataclass(frozen=True)
class BatchOrder:
    """Everything a batch step needs, as plain data: it could run in a Lambda as well."""

    batch: Batch
    source_bucket: str
    target: UploadTarget
    threads: int
    scratch_bucket: str
    scratch_prefix: str


@dataclass(frozen=True)
class StartedUpload:
    target: UploadTarget
    started: float  # time.time() when the upload began


@op(description="Create the archive's multipart upload (CRC-32, full object).")
def begin_archive_upload(
    context: OpExecutionContext, s3: S3Resource, archive_request: ArchiveRequest, plan: Plan
) -> StartedUpload:
    target = begin_upload(s3.get_client(), archive_request.destination_bucket,
                          archive_request.destination_key)
    context.log.info(f"began the upload of {target.url}: {plan.part_count} parts in "
                     f"{len(plan.batches)} batches")
    return StartedUpload(target, time.time())


@op(out=DynamicOut(BatchOrder), description="One branch per batch of the plan.")
def fan_out_batches(
    context: OpExecutionContext, s3: S3Resource, archive_request: ArchiveRequest, plan: Plan,
    upload: StartedUpload,
):
    try:
        for batch in plan.batches:
            order = BatchOrder(batch, plan.source_bucket, upload.target, archive_request.threads,
                               plan.scratch_bucket, plan.scratch_prefix)
            yield DynamicOutput(order, mapping_key=f"batch_{batch.index}")
    except BaseException:
        abort_upload(s3.get_client(), upload.target)
        raise


@op(description="Copy and upload the parts of one batch; abort the archive on failure.")
def run_archive_batch(
    context: OpExecutionContext, s3: S3Resource, order: BatchOrder
) -> Output[BatchResult]:
    client = archive_client(s3, order.threads)
    store = S3PartStore(client, order.source_bucket, order.target, order.scratch_bucket,
                        order.scratch_prefix)
    try:
        result = run_batch(store, order.batch, order.threads)
    except BaseException:
        context.log.error(f"batch {order.batch.index} failed; aborting the upload of "
                          f"{order.target.url}")
        abort_upload(client, order.target)
        raise
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    context.log.info(
        f"batch {result.batch}: {result.copy_parts} copy parts, {result.upload_parts} upload "
        f"parts, {result.temps} temporary objects, "
        f"{result.read_bytes + result.uploaded_bytes} B through this worker, "
        f"{result.seconds:.1f} s, peak memory {peak // 2**20} MiB")
    return Output(result, metadata={
        "copy_parts": result.copy_parts,
        "upload_parts": result.upload_parts,
        "temporary_objects": result.temps,
        "bytes_copied_by_s3": result.copied_bytes,
        "bytes_through_worker": result.read_bytes + result.uploaded_bytes + result.crc_read_bytes,
        "seconds": round(result.seconds, 2),
        "peak_memory_bytes": peak,
        "requests": MetadataValue.json(dict(store.requests)),
    })


@dataclass(frozen=True)
class ArchiveSummary:
    """The finished archive."""

    url: str
    size: int
    entries: int
    crc32: int
    parts: int
    copy_parts: int
    upload_parts: int
    bytes_through_workers: int
    seconds: float


@op(description="Upload the central directory part, complete the upload, verify the object.")
def complete_archive(
    context: OpExecutionContext, s3: S3Resource, plan: Plan, upload: StartedUpload,
    results: list[BatchResult],
) -> Output[ArchiveSummary]:
    client = s3.get_client()
    store = S3PartStore(client, plan.source_bucket, upload.target, plan.scratch_bucket,
                        plan.scratch_prefix)
    try:
        final = run_final_part(store, plan, results)
        complete_upload(client, upload.target, final.parts, final.archive_crc,
                        plan.archive_size)
    except BaseException:
        context.log.error(f"completing {upload.target.url} failed; aborting its upload")
        abort_upload(client, upload.target)
        raise

    through = final.read_bytes + final.uploaded_bytes + sum(
        r.read_bytes + r.uploaded_bytes + r.crc_read_bytes for r in results)
    summary = ArchiveSummary(
        url=upload.target.url, size=plan.archive_size, entries=len(plan.entries),
        crc32=final.archive_crc, parts=plan.part_count, copy_parts=plan.copy_parts,
        upload_parts=plan.upload_parts, bytes_through_workers=through,
        seconds=time.time() - upload.started,
    )
    context.log.info(
        f"archive {summary.url}: {summary.size} B, {summary.entries} entries, "
        f"{summary.parts} parts, CRC-32 {summary.crc32:08x}, {through} B through workers "
        f"({through / summary.size:.2%} of the archive), {summary.seconds:.1f} s")
    return Output(summary, metadata={
        "url": MetadataValue.url(summary.url),
        "archive_bytes": summary.size,
        "entries": summary.entries,
        "crc32": f"{summary.crc32:08x}",
        "parts": summary.parts,
        "copy_parts": summary.copy_parts,
        "upload_parts": summary.upload_parts,
        "bytes_through_workers": through,
        "seconds": round(summary.seconds, 2),
    })


@graph_asset(description="The ZIP archive in S3, built by one multipart upload.")
def archive(zip_plan: Plan) -> ArchiveSummary:
    upload = begin_archive_upload(zip_plan)
    results = fan_out_batches(zip_plan, upload).map(run_archive_batch)
    return complete_archive(zip_plan, upload, results.collect())
