"""The project's Dagster code location, with S3 requests counted (benchmarks.httpcount).

`dagster job execute -m benchmarks.dagster_defs` runs the same job, resources and executor
as `-m s3zip_dagster.definitions`; importing this module first makes every S3 client in
every step process report its requests to the folder named by S3ZIP_BENCH_COUNT_DIR.
"""

from benchmarks import httpcount

httpcount.install()

from s3zip_dagster.definitions import defs  # noqa: E402  (after the counting hook)

__all__ = ["defs"]
