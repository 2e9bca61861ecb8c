"""The S3 calls: listing the source, the archive's multipart upload and a PartStore on it.

Only boto3 is needed here, so this runs in an AWS Lambda as well as in a Dagster op.
"""

import logging
import threading
from collections import Counter
from dataclasses import dataclass

from botocore.exceptions import ClientError

from .batch import CompletedPart, CopyResult
from .crc import crc32_from_s3, crc32_to_s3
from .errors import IntegrityError, SourceChangedError, SourceError, UploadError
from .names import relative_key, selected
from .plan import CopyPart, Entry, SourceObject

log = logging.getLogger(__name__)

_GONE_CODES = {"PreconditionFailed", "NoSuchKey", "404", "412"}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


def list_source(client, bucket: str, prefix: str, include: list[str] | tuple[str, ...] = (),
                exclude: list[str] | tuple[str, ...] = ()) -> list[SourceObject]:
    """Every object under s3://bucket/prefix whose key, less the prefix's folder, passes
    the include/exclude globs. Raises SourceError when the bucket cannot be listed."""
    objects = []
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if not selected(relative_key(item["Key"], prefix), include, exclude):
                    continue
                objects.append(SourceObject(
                    key=item["Key"],
                    size=item["Size"],
                    etag=item["ETag"],
                    mtime=int(item["LastModified"].timestamp()),
                    storage_class=item.get("StorageClass", "STANDARD"),
                ))
    except ClientError as error:
        if _code(error) == "NoSuchBucket":
            raise SourceError(f"source bucket s3://{bucket} does not exist; check the bucket "
                              "name and the region of the S3 endpoint") from error
        raise SourceError(f"cannot list s3://{bucket}/{prefix}: {_code(error)}: "
                          f"{_message(error)}; the role needs s3:ListBucket on it") from error
    log.info("listed %d objects under s3://%s/%s", len(objects), bucket, prefix)
    return objects


@dataclass(frozen=True)
class UploadTarget:
    """The archive's multipart upload."""

    bucket: str
    key: str
    upload_id: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def check_destination(client, bucket: str) -> None:
    """Raise SourceError when the destination bucket is missing or not reachable."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        raise SourceError(f"destination bucket s3://{bucket} cannot be used: {_code(error)} "
                          f"{_message(error)}; create it or fix the name") from error


def begin_upload(client, bucket: str, key: str) -> UploadTarget:
    """Create the archive's multipart upload with full-object CRC-32 checksums."""
    response = client.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT",
        ContentType="application/zip",
    )
    target = UploadTarget(bucket, key, response["UploadId"])
    log.info("began the multipart upload of %s (upload id %s)", target.url, target.upload_id)
    return target


def abort_upload(client, target: UploadTarget) -> None:
    """Abort the archive's upload, freeing its parts. An upload already gone is fine."""
    try:
        client.abort_multipart_upload(Bucket=target.bucket, Key=target.key,
                                      UploadId=target.upload_id)
        log.info("aborted the multipart upload of %s", target.url)
    except ClientError as error:
        if _code(error) != "NoSuchUpload":
            raise
        log.info("the multipart upload of %s was already aborted or completed", target.url)


def complete_upload(client, target: UploadTarget, parts: list[CompletedPart],
                    archive_crc: int, archive_size: int) -> dict:
    """Complete the upload with the archive's CRC-32, which S3 checks against the bytes;
    then read back the object's size and checksum. Returns the HeadObject response."""
    client.complete_multipart_upload(
        Bucket=target.bucket, Key=target.key, UploadId=target.upload_id,
        MultipartUpload={"Parts": [
            {"PartNumber": p.number, "ETag": p.etag, "ChecksumCRC32": crc32_to_s3(p.crc)}
            for p in parts
        ]},
        ChecksumCRC32=crc32_to_s3(archive_crc), ChecksumType="FULL_OBJECT",
    )
    head = client.head_object(Bucket=target.bucket, Key=target.key, ChecksumMode="ENABLED")
    problems = []
    if head["ContentLength"] != archive_size:
        problems.append(f"{head['ContentLength']} B instead of {archive_size} B")
    stored = head.get("ChecksumCRC32")
    if stored and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        if crc32_from_s3(stored) != archive_crc:
            problems.append(f"CRC-32 {stored} instead of {crc32_to_s3(archive_crc)}")
    if problems:
        client.delete_object(Bucket=target.bucket, Key=target.key)
        raise IntegrityError(f"the completed archive {target.url} has " + " and ".join(problems)
                             + "; it was deleted. Run the job again.")
    log.info("completed %s: %d B, %d parts, CRC-32 %08x", target.url, archive_size,
             len(parts), archive_crc)
    return head


class S3PartStore:
    """A PartStore on S3: source objects in one bucket, parts into the archive's upload.

    Every source request is pinned to the ETag seen in the listing, so an object that
    changes mid-run fails the run instead of slipping into the archive.
    """

    def __init__(self, client, source_bucket: str, target: UploadTarget) -> None:
        self.client = client
        self.source_bucket = source_bucket
        self.target = target
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, operation: str) -> None:
        with self._lock:
            self.requests[operation] += 1

    def _upload_gone(self, action: str) -> UploadError:
        return UploadError(
            f"the multipart upload of {self.target.url} (upload id {self.target.upload_id}) no "
            f"longer exists at {action}: a failure elsewhere in the run aborted it, or it was "
            "aborted from outside. See the run's first failure, then run the whole job again; "
            "an aborted upload cannot be resumed, so re-running only failed steps fails too.")

    def _source_error(self, error: ClientError, entry: Entry, action: str) -> Exception:
        url = f"s3://{self.source_bucket}/{entry.key}"
        if _code(error) == "NoSuchUpload":
            return self._upload_gone(action)
        if _code(error) in _GONE_CODES:
            return SourceChangedError(
                f"{url} changed or was deleted after it was listed (listed ETag {entry.etag}, "
                f"{_code(error)} on {action}); the run stops so that the archive never mixes "
                "versions. Run the job again to archive the current objects.")
        return UploadError(f"{action} of {url} failed: {_code(error)}: {_message(error)}")

    def copy_part(self, part: CopyPart, entry: Entry) -> CopyResult:
        self._count("UploadPartCopy")
        try:
            response = self.client.upload_part_copy(
                Bucket=self.target.bucket, Key=self.target.key, UploadId=self.target.upload_id,
                PartNumber=part.number,
                CopySource={"Bucket": self.source_bucket, "Key": entry.key},
                CopySourceRange=f"bytes={part.start}-{part.end - 1}",
                CopySourceIfMatch=entry.etag,
            )
        except ClientError as error:
            raise self._source_error(error, entry, f"copy part {part.number}") from error
        result = response["CopyPartResult"]
        crc = result.get("ChecksumCRC32")
        return CopyResult(etag=result["ETag"], crc=crc32_from_s3(crc) if crc else None)

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        if start == end:
            return b""
        self._count("GetObject")
        try:
            response = self.client.get_object(
                Bucket=self.source_bucket, Key=entry.key, IfMatch=entry.etag,
                Range=f"bytes={start}-{end - 1}",
            )
            data = response["Body"].read()
        except ClientError as error:
            raise self._source_error(error, entry, f"read of bytes {start}-{end - 1}") from error
        if len(data) != end - start:
            raise SourceChangedError(
                f"s3://{self.source_bucket}/{entry.key} returned {len(data)} B for bytes "
                f"{start}-{end - 1}; it changed after it was listed. Run the job again.")
        return data

    def whole_object_crc(self, entry: Entry) -> int | None:
        """The object's CRC-32 when S3 keeps one of the whole content (FULL_OBJECT)."""
        self._count("HeadObject")
        try:
            head = self.client.head_object(Bucket=self.source_bucket, Key=entry.key,
                                           IfMatch=entry.etag, ChecksumMode="ENABLED")
        except ClientError as error:
            raise self._source_error(error, entry, "HeadObject") from error
        value = head.get("ChecksumCRC32")
        if not value or head.get("ChecksumType") != "FULL_OBJECT" or "-" in value:
            return None
        return crc32_from_s3(value)

    def upload_part(self, number: int, body: bytes | bytearray, crc: int) -> str:
        self._count("UploadPart")
        try:
            response = self.client.upload_part(
                Bucket=self.target.bucket, Key=self.target.key, UploadId=self.target.upload_id,
                # bytes, not the bytearray: some S3 stacks (moto among them) reject bytearray
                PartNumber=number, Body=bytes(body), ChecksumCRC32=crc32_to_s3(crc),
            )
        except ClientError as error:
            if _code(error) == "NoSuchUpload":
                raise self._upload_gone(f"upload part {number}") from error
            raise UploadError(f"upload part {number} of {self.target.url} failed: "
                              f"{_code(error)}: {_message(error)}") from error
        return response["ETag"]
