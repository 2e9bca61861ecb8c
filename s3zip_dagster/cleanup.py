"""Removing what killed runs left behind: temporary objects and incomplete uploads.

A run that fails cleans up after itself; a run whose process is killed cannot. This job (or
`python -m s3zip_dagster.cleanup`) aborts the multipart uploads and deletes the objects under
the scratch prefix that are older than a given age, and aborts old incomplete uploads of the
archive's key. The README shows the S3 lifecycle rule that does the same without a job.
"""

import argparse
import logging

import boto3
from dagster import Config, OpExecutionContext, job, op
from dagster_aws.s3 import S3Resource
from pydantic import Field

from .core.plan import DEFAULT_SCRATCH_PREFIX
from .core.s3 import clean_scratch
from .resources import ArchiveRequest

HOUR = 3600


class CleanupConfig(Config):
    older_than_hours: float = Field(
        24, description="Only what is older than this is removed: a younger temporary object "
                        "may belong to a run still going.")


@op(description="Abort old uploads and delete old temporary objects under the scratch prefix.")
def clean_up_scratch(context: OpExecutionContext, config: CleanupConfig, s3: S3Resource,
                     archive_request: ArchiveRequest) -> None:
    bucket, prefix = archive_request.scratch_location
    aborted, deleted = clean_scratch(
        s3.get_client(), bucket, prefix, config.older_than_hours * HOUR,
        archive_key=archive_request.destination_key)
    context.log.info(f"s3://{bucket}/{prefix}: aborted {aborted} uploads, deleted {deleted} "
                     f"temporary objects older than {config.older_than_hours} h")
    context.add_output_metadata({"uploads_aborted": aborted, "objects_deleted": deleted})


@job(description="Remove what killed runs left under the scratch prefix.")
def cleanup_job() -> None:
    clean_up_scratch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="bucket holding the scratch prefix")
    parser.add_argument("--prefix", default=DEFAULT_SCRATCH_PREFIX, help="the scratch prefix")
    parser.add_argument("--archive-key", help="also abort old uploads of this archive key")
    parser.add_argument("--older-than-hours", type=float, default=24)
    parser.add_argument("--endpoint-url", help="an S3-compatible endpoint instead of AWS")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    client = boto3.client("s3", endpoint_url=args.endpoint_url)
    aborted, deleted = clean_scratch(client, args.bucket, args.prefix,
                                     args.older_than_hours * HOUR, args.archive_key)
    print(f"aborted {aborted} uploads, deleted {deleted} objects")


if __name__ == "__main__":
    main()
