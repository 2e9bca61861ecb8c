"""Dagster resources: the S3 client and the archive request (what to zip, where to put it).

The archive request is a resource so that a run states its source and destination once,
and every asset of the run reads the same values.
"""

import os

import boto3
from botocore.config import Config
from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from .core.limits import MiB
from .core.plan import DEFAULT_SCRATCH_PREFIX, HEAD_STREAM, NamingOptions, PlanSettings

# The embedded default: the demo data set on the local S3 server (`make demo`, `make dev`).
DEMO_SOURCE_BUCKET = "s3zip-demo-source"
DEMO_SOURCE_PREFIX = "demo/"
DEMO_DESTINATION_BUCKET = "s3zip-demo-archives"
DEMO_DESTINATION_KEY = "demo.zip"

ENDPOINT_ENV = "S3ZIP_S3_ENDPOINT_URL"


class ArchiveRequest(ConfigurableResource):
    """What one run archives and where the archive goes, with the planner's knobs.

    Example run config (YAML)::

        resources:
          archive_request:
            config:
              source_bucket: my-data
              source_prefix: exports/2026-12/
              destination_bucket: my-deliveries
              destination_key: exports/2026-12.zip
    """

    source_bucket: str = Field(DEMO_SOURCE_BUCKET, description="Bucket holding the objects.")
    source_prefix: str = Field(
        DEMO_SOURCE_PREFIX, description="Only keys under this prefix are archived; '' for all.")
    include: list[str] = Field(
        default_factory=list,
        description="Glob patterns on the key less the prefix (`**` crosses folders); when "
                    "given, only matching keys are archived.")
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns of keys to leave out.")
    destination_bucket: str = Field(
        DEMO_DESTINATION_BUCKET, description="Bucket the archive is written to.")
    destination_key: str = Field(DEMO_DESTINATION_KEY, description="Key of the archive.")
    strip_prefix: bool = Field(
        True, description="Entry names are keys less source_prefix; false keeps whole keys.")
    name_prefix: str = Field(
        "", description="Put in front of every entry name, e.g. 'export-2026-12/'.")
    batch_count: int = Field(
        0, description="Batches the parts are split into, one Dagster step each; 0 means the "
                       "number of CPUs, which the multiprocess executor runs at once.")
    threads: int = Field(16, description="Concurrent S3 requests in one batch.")
    upload_part_mib: int = Field(
        8, description="Upload parts are sent once they hold this many MiB (at least 5).")
    max_upload_part_mib: int = Field(
        256, description="How far upload parts may grow to keep within 10,000 parts.")
    strategy: str = Field(
        HEAD_STREAM, description="zero-stream: no byte of an object of 5 MiB or more passes "
                                 "through a worker; head-stream: the previous strategy, which "
                                 "streams up to 5 MiB of such an object at a boundary.")
    scratch_bucket: str = Field(
        "", description="Bucket of the run's temporary objects; '' means destination_bucket.")
    scratch_prefix: str = Field(
        DEFAULT_SCRATCH_PREFIX, description="Folder of temporary objects; each run uses a "
                                            "subfolder of its own and empties it.")

    def plan_settings(self) -> PlanSettings:
        return PlanSettings(
            upload_part_size=self.upload_part_mib * MiB,
            max_upload_part_size=self.max_upload_part_mib * MiB,
            batch_count=self.batch_count or os.cpu_count() or 1,
            strategy=self.strategy,
        )

    @property
    def scratch_location(self) -> tuple[str, str]:
        """(bucket, prefix) of temporary objects."""
        return self.scratch_bucket or self.destination_bucket, self.scratch_prefix

    def naming(self) -> NamingOptions:
        return NamingOptions(strip_prefix=self.strip_prefix, name_prefix=self.name_prefix)


# UploadPartCopy answers only when the copy is done; a range of up to 5 GiB can take minutes,
# longer than botocore's 60 s read timeout.
COPY_READ_TIMEOUT_SECONDS = 15 * 60


def archive_client(s3: S3Resource, threads: int):
    """A boto3 S3 client with the resource's settings, a connection per thread and a read
    timeout long enough for the copy of a 5 GiB range."""
    session = boto3.session.Session(profile_name=s3.profile_name)
    config = Config(
        retries={"max_attempts": s3.max_attempts, "mode": "standard"},
        max_pool_connections=max(threads, 10),
        read_timeout=COPY_READ_TIMEOUT_SECONDS,
    )
    return session.client(
        "s3", region_name=s3.region_name, endpoint_url=s3.endpoint_url, use_ssl=s3.use_ssl,
        verify=s3.verify, aws_access_key_id=s3.aws_access_key_id,
        aws_secret_access_key=s3.aws_secret_access_key,
        aws_session_token=s3.aws_session_token, config=config,
    )


def s3_resource_from_environment() -> S3Resource:
    """An S3Resource for AWS, or for the S3 server named by S3ZIP_S3_ENDPOINT_URL.

    Credentials and region come from the usual AWS chain (environment, profile, role).
    """
    return S3Resource(
        endpoint_url=os.environ.get(ENDPOINT_ENV) or None,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )
