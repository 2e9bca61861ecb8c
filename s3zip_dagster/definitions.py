"""The Dagster code location: assets, the archive job, its executor and resources."""

from dagster import AssetSelection, Definitions, define_asset_job, multi_or_in_process_executor

from .assets import archive, source_listing, zip_plan
from .cleanup import cleanup_job
from .resources import ArchiveRequest, s3_resource_from_environment

ZIP_JOB_NAME = "zip_archive_job"

# Multiprocess with forkserver by default: each step forks from a process that has already
# imported this package, so a step starts in well under a second. A run can pick
# `execution: {config: {in_process: {}}}` instead.
DEFAULT_EXECUTION = {"config": {"multiprocess": {"start_method": {"forkserver": {}}}}}

zip_archive_job = define_asset_job(
    ZIP_JOB_NAME,
    selection=AssetSelection.assets(source_listing, zip_plan, archive),
    description="List the source, plan the archive, copy and upload its parts, complete it.",
    config={"execution": DEFAULT_EXECUTION},
)

defs = Definitions(
    assets=[source_listing, zip_plan, archive],
    jobs=[zip_archive_job, cleanup_job],
    executor=multi_or_in_process_executor,
    resources={
        "s3": s3_resource_from_environment(),
        "archive_request": ArchiveRequest(),
    },
)
