"""The data sets: deterministic objects, generated in chunks and uploaded with threads.

An object's bytes come from a pseudo-random generator seeded by the set and the object's
index, so a run can be repeated byte for byte; nothing is kept in memory but the chunk
being uploaded and each object's size and CRC-32, which the archive checks compare with.
"""

import random
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from s3zip_dagster.core.limits import GiB, KiB, MiB

SMALL_LIMIT = 5 * MiB  # the core's copy threshold: smaller objects pass through a worker
CHUNK = 8 * MiB  # generation and upload chunk; also the part size of generated objects
PUT_LIMIT = 16 * MiB  # objects up to this size are sent with one PutObject


@dataclass(frozen=True)
class ObjectSpec:
    key: str
    size: int
    seed: int


@dataclass
class DataSet:
    """One data set under s3://bucket/prefix."""

    name: str
    title: str
    bucket: str
    prefix: str
    objects: list[ObjectSpec]

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def small_bytes(self) -> int:
        """Bytes of the objects under the copy threshold, which must pass through us."""
        return sum(o.size for o in self.objects if o.size < SMALL_LIMIT)

    def entry_name(self, key: str) -> str:
        return key[len(self.prefix):]


def _specs(name: str, sizes: list[int], folder_every: int = 0) -> list[ObjectSpec]:
    base = zlib.crc32(name.encode()) << 32
    specs = []
    for index, size in enumerate(sizes):
        folder = f"d{index // folder_every:03d}/" if folder_every else ""
        specs.append(ObjectSpec(f"{name}/{folder}obj-{index:05d}.bin", size, base + index))
    return specs


def seed_shape(count: int = 600) -> DataSet:
    """The seed design's set: sizes normal around 5 MB (sd 1 MB), clipped to 2..8 MB."""
    rng = random.Random(5_000_000)
    sizes = [min(8_000_000, max(2_000_000, int(rng.gauss(5e6, 1e6)))) for _ in range(count)]
    title = f"seed shape ({count} x ~5 MB)"
    return DataSet("seed", title, "bench-seed", "seed/", _specs("seed", sizes))


def big_heavy() -> DataSet:
    """16 x 256 MiB among 400 x 64 KiB, in a fixed shuffled order."""
    sizes = [256 * MiB] * 16 + [64 * KiB] * 400
    random.Random(16).shuffle(sizes)
    return DataSet("big", "big-heavy (16 x 256 MiB + 400 x 64 KiB)", "bench-big", "big/",
                   _specs("big", sizes))


def many_small() -> DataSet:
    sizes = [4 * KiB] * 20_000
    return DataSet("small", "many-small (20,000 x 4 KiB)", "bench-small", "small/",
                   _specs("small", sizes, folder_every=1000))


def huge() -> DataSet:
    """One object over 5 GiB (so over S3's largest part) among 10 small ones."""
    sizes = [97 * KiB + 3 * i for i in range(5)] + [5 * GiB + MiB + 7]
    sizes += [97 * KiB + 3 * i for i in range(5, 10)]
    return DataSet("huge", "huge (5 GiB + 1 MiB + 7 B, 10 x ~97 KiB)", "bench-huge", "huge/",
                   _specs("huge", sizes))


def chunks(spec: ObjectSpec) -> Iterator[bytes]:
    """The object's bytes, in chunks of at most CHUNK."""
    rng = random.Random(spec.seed)
    left = spec.size
    while left:
        size = min(CHUNK, left)
        yield rng.randbytes(size)
        left -= size


def _upload_one(client, bucket: str, spec: ObjectSpec) -> int:
    if spec.size <= PUT_LIMIT:
        body = b"".join(chunks(spec))
        client.put_object(Bucket=bucket, Key=spec.key, Body=body)
        return zlib.crc32(body)

    upload_id = client.create_multipart_upload(Bucket=bucket, Key=spec.key)["UploadId"]
    parts = []
    crc = 0
    try:
        for number, chunk in enumerate(chunks(spec), start=1):
            crc = zlib.crc32(chunk, crc)
            answer = client.upload_part(Bucket=bucket, Key=spec.key, UploadId=upload_id,
                                        PartNumber=number, Body=chunk)
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        client.complete_multipart_upload(Bucket=bucket, Key=spec.key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=spec.key, UploadId=upload_id)
        raise
    return crc


def upload(client, data: DataSet, threads: int) -> dict[str, tuple[int, int]]:
    """Create the bucket and upload every object; return entry name -> (size, CRC-32)."""
    client.create_bucket(Bucket=data.bucket)
    with ThreadPoolExecutor(threads) as pool:
        crcs = list(pool.map(lambda spec: _upload_one(client, data.bucket, spec),
                             data.objects))
    return {data.entry_name(o.key): (o.size, crc)
            for o, crc in zip(data.objects, crcs, strict=True)}


SETS = {"seed": seed_shape, "big": big_heavy, "small": many_small, "huge": huge}
