"""How fast this S3 server copies, reads and takes uploads: the yardstick of the results.

Server-side copies only pay off where the server copies faster than a client streams; on
a local SeaweedFS sharing two cores with the client that is not a given, so the harness
measures it on the big objects of a set: the same bytes copied by UploadPartCopy into a
scratch upload (aborted after), whole and as a range (bytes 1 to the end: the core always
names a range), read by GetObject, and sent by UploadPart.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

from s3zip_dagster.core.limits import MiB

from .datasets import DataSet

SAMPLE_OBJECTS = 8
SEND_CHUNK = 8 * MiB


def measure(client, data: DataSet, bucket: str, threads: int) -> dict:
    """Throughput (MB/s) of each operation on up to SAMPLE_OBJECTS of the set's largest
    objects, `threads` at a time."""
    sample = sorted(data.objects, key=lambda o: -o.size)[:SAMPLE_OBJECTS]
    total = sum(o.size for o in sample)
    key = "calibration/scratch"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        def copy(job, ranged: bool = False):
            number, spec = job
            extra = {"CopySourceRange": f"bytes=1-{spec.size - 1}"} if ranged else {}
            client.upload_part_copy(Bucket=bucket, Key=key, UploadId=upload_id,
                                    PartNumber=number + (100 if ranged else 0),
                                    CopySource={"Bucket": data.bucket, "Key": spec.key},
                                    **extra)

        def read(spec):
            body = client.get_object(Bucket=data.bucket, Key=spec.key)["Body"]
            for _ in body.iter_chunks(SEND_CHUNK):
                pass

        chunk = os.urandom(SEND_CHUNK)  # incompressible, as the archive bytes are

        def send(number):
            client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                               PartNumber=1000 + number, Body=chunk)

        figures = {"sample_bytes": total, "threads": threads}
        with ThreadPoolExecutor(threads) as pool:
            for name, run in (("copy", lambda: list(pool.map(copy, enumerate(sample, 1)))),
                              ("copy_range", lambda: list(pool.map(
                                  lambda job: copy(job, True), enumerate(sample, 1)))),
                              ("get", lambda: list(pool.map(read, sample))),
                              ("upload", lambda: list(pool.map(
                                  send, range(total // SEND_CHUNK))))):
                started = time.monotonic()
                run()
                figures[f"{name}_mb_per_s"] = round(total / (time.monotonic() - started) / 1e6)
    finally:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    return figures
