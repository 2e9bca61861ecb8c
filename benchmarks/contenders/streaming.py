"""(a) Streaming, as a Python user would write it: every byte through this process twice.

Each object is downloaded with boto3 (a pool of `threads` downloads ahead, bounded in
bytes), stream-zip writes the ZIP (STORE; ZIP64 for an entry only where its size or
offset needs it) and the stream is cut into 16 MiB parts that a pool of `threads` uploads
by one multipart upload. An object too big to hold in memory is spooled to a temporary
file while its CRC-32 is computed, then streamed with that CRC-32 (stream-zip must know
it before the entry's local header).
"""

import tempfile
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from stream_zip import NO_COMPRESSION_32, NO_COMPRESSION_64, stream_zip

from s3zip_dagster.core.limits import MiB

PART_SIZE = 16 * MiB
PREFETCH_BYTES = 256 * MiB  # downloads ahead of the ZIP writer, beyond the next object
IN_MEMORY_LIMIT = 512 * MiB  # bigger objects are spooled to a temporary file
READ_CHUNK = 8 * MiB
ZIP32_LIMIT = 0xFFFFFFFF
ZIP64_MARGIN = MiB  # headers and buffering make the offset estimate a little short


def _download(client, bucket: str, item: dict, workdir):
    body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"]
    if item["Size"] <= IN_MEMORY_LIMIT:
        return body.read(), None
    spool = tempfile.TemporaryFile(dir=workdir)
    crc = 0
    for chunk in body.iter_chunks(READ_CHUNK):
        crc = zlib.crc32(chunk, crc)
        spool.write(chunk)
    spool.seek(0)
    return spool, crc


def _file_chunks(spool) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(READ_CHUNK):
            yield chunk


def _members(client, bucket: str, prefix: str, listing: list[dict], threads: int, workdir):
    """stream-zip's member files, downloaded ahead by a pool."""
    offset = 0
    with ThreadPoolExecutor(threads) as pool:
        ahead: deque[tuple[dict, Future]] = deque()
        queued = 0
        position = 0
        while ahead or position < len(listing):
            while position < len(listing) and len(ahead) < threads and (
                    not ahead or queued + listing[position]["Size"] <= PREFETCH_BYTES):
                item = listing[position]
                ahead.append((item, pool.submit(_download, client, bucket, item, workdir)))
                queued += item["Size"]
                position += 1
            item, future = ahead.popleft()
            queued -= item["Size"]
            data, crc = future.result()

            name = item["Key"][len(prefix):]
            size = item["Size"]
            wide = size >= ZIP32_LIMIT or offset + size + ZIP64_MARGIN >= ZIP32_LIMIT
            if crc is None:
                method = NO_COMPRESSION_64 if wide else NO_COMPRESSION_32
                yield name, item["LastModified"], 0o644, method, (data,)
            else:
                method = NO_COMPRESSION_64(size, crc)
                yield name, item["LastModified"], 0o644, method, _file_chunks(data)
            offset += 30 + len(name.encode()) + 9 + (20 if wide else 0) + size


def run(client, job) -> dict:
    listing = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=job.source_bucket,
                                                                  Prefix=job.prefix):
        listing += page.get("Contents", [])

    bucket, key = job.destination_bucket, job.destination_key
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def send(number: int, body: bytes) -> dict:
        answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                    PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    try:
        with ThreadPoolExecutor(job.threads) as pool:
            sending: deque[Future] = deque()
            done = []
            buffer = bytearray()
            members = _members(client, job.source_bucket, job.prefix, listing, job.threads,
                               job.workdir)
            for chunk in stream_zip(members, chunk_size=MiB):
                buffer += chunk
                if len(buffer) >= PART_SIZE:
                    sending.append(pool.submit(send, len(sending) + len(done) + 1,
                                               bytes(buffer)))
                    buffer = bytearray()
                    while len(sending) > job.threads:
                        done.append(sending.popleft().result())
            if buffer or not (sending or done):
                sending.append(pool.submit(send, len(sending) + len(done) + 1, bytes(buffer)))
            done += [future.result() for future in sending]
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": done})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return {"entries": len(listing), "parts": len(done)}
