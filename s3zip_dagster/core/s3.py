"""The S3 calls: listing the source, the archive's multipart upload and a PartStore on it.

Only boto3 is needed here, so this runs in an AWS Lambda as well as in a Dagster op.
"""

import logging
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError

from .batch import CompletedPart, CopyResult
from .crc import crc32_from_s3, crc32_to_s3
from .errors import IntegrityError, SourceChangedError, SourceError, UploadError
from .model import Entry, SourceObject, Temp
from .names import relative_key, selected

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


def begin_upload(client, bucket: str, key: str,
                 content_type: str = "application/zip") -> UploadTarget:
    """Create a multipart upload with full-object CRC-32 checksums."""
    response = client.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT",
        ContentType=content_type,
    )
    target = UploadTarget(bucket, key, response["UploadId"])
    log.debug("began the multipart upload of %s (upload id %s)", target.url, target.upload_id)
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


def _complete(client, target: UploadTarget, parts: list[CompletedPart], crc: int) -> dict:
    return client.complete_multipart_upload(
        Bucket=target.bucket, Key=target.key, UploadId=target.upload_id,
        MultipartUpload={"Parts": [
            {"PartNumber": p.number, "ETag": p.etag, "ChecksumCRC32": crc32_to_s3(p.crc)}
            for p in parts
        ]},
        ChecksumCRC32=crc32_to_s3(crc), ChecksumType="FULL_OBJECT",
    )


def complete_upload(client, target: UploadTarget, parts: list[CompletedPart],
                    archive_crc: int, archive_size: int) -> dict:
    """Complete the upload with the archive's CRC-32, which S3 checks against the bytes;
    then read back the object's size and checksum. Returns the HeadObject response."""
    _complete(client, target, parts, archive_crc)
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
    """A PartStore on S3: source objects in one bucket, parts into the archive's upload or
    into temporary objects under the plan's scratch prefix.

    Every source request is pinned to the ETag seen in the listing, so an object that
    changes mid-run fails the run instead of slipping into the archive; every copy from a
    temporary object is pinned to the ETag it was completed with.
    """

    def __init__(self, client, source_bucket: str, target: UploadTarget,
                 scratch_bucket: str = "", scratch_prefix: str = "") -> None:
        self.client = client
        self.source_bucket = source_bucket
        self.target = target
        self.scratch_bucket = scratch_bucket or target.bucket
        self.scratch_prefix = scratch_prefix
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._temps: dict[int, UploadTarget] = {}
        self._temp_etags: dict[int, str] = {}
        self._probe: UploadTarget | None = None
        self._probe_parts = 0

    def _count(self, operation: str) -> None:
        with self._lock:
            self.requests[operation] += 1

    def _upload_gone(self, action: str, upload: UploadTarget) -> UploadError:
        return UploadError(
            f"the multipart upload of {upload.url} (upload id {upload.upload_id}) no "
            f"longer exists at {action}: a failure elsewhere in the run aborted it, or it was "
            "aborted from outside. See the run's first failure, then run the whole job again; "
            "an aborted upload cannot be resumed, so re-running only failed steps fails too.")

    def _source_error(self, error: ClientError, entry: Entry, action: str,
                      upload: UploadTarget) -> Exception:
        url = f"s3://{self.source_bucket}/{entry.key}"
        if _code(error) == "NoSuchUpload":
            return self._upload_gone(action, upload)
        if _code(error) in _GONE_CODES:
            return SourceChangedError(
                f"{url} changed or was deleted after it was listed (listed ETag {entry.etag}, "
                f"{_code(error)} on {action}); the run stops so that the archive never mixes "
                "versions. Run the job again to archive the current objects.")
        return UploadError(f"{action} of {url} failed: {_code(error)}: {_message(error)}")

    def _upload_of(self, target: Temp | None) -> UploadTarget:
        return self.target if target is None else self._temps[target.index]

    def _copy(self, upload: UploadTarget, number: int, copy_source: dict, first: int,
              last: int, etag: str) -> CopyResult:
        self._count("UploadPartCopy")
        response = self.client.upload_part_copy(
            Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id,
            PartNumber=number, CopySource=copy_source,
            CopySourceRange=f"bytes={first}-{last}", CopySourceIfMatch=etag,
        )
        result = response["CopyPartResult"]
        crc = result.get("ChecksumCRC32")
        return CopyResult(etag=result["ETag"], crc=crc32_from_s3(crc) if crc else None)

    def copy_source(self, target: Temp | None, number: int, entry: Entry, start: int,
                    end: int) -> CopyResult:
        upload = self._upload_of(target)
        try:
            return self._copy(upload, number, {"Bucket": self.source_bucket, "Key": entry.key},
                              start, end - 1, entry.etag)
        except ClientError as error:
            raise self._source_error(error, entry, f"copy part {number} of {upload.url}",
                                     upload) from error

    def copy_temp(self, target: Temp | None, number: int, temp: Temp, start: int,
                  end: int) -> CopyResult:
        upload = self._upload_of(target)
        source = self._temps[temp.index]
        try:
            return self._copy(upload, number, {"Bucket": source.bucket, "Key": source.key},
                              start, end - 1, self._temp_etags[temp.index])
        except ClientError as error:
            if _code(error) == "NoSuchUpload":
                raise self._upload_gone(f"copy part {number}", upload) from error
            raise UploadError(f"copy of temporary object {source.url} into part {number} of "
                              f"{upload.url} failed: {_code(error)}: {_message(error)}"
                              ) from error

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
            raise self._source_error(error, entry, f"read of bytes {start}-{end - 1}",
                                     self.target) from error
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
            raise self._source_error(error, entry, "HeadObject", self.target) from error
        value = head.get("ChecksumCRC32")
        if not value or head.get("ChecksumType") != "FULL_OBJECT" or "-" in value:
            return None
        return crc32_from_s3(value)

    def probe_crc(self, entry: Entry, start: int, end: int) -> int | None:
        """Copy the range into a scratch upload that is never completed, for its CRC-32."""
        with self._lock:
            if self._probe is None:
                key = f"{self.scratch_prefix}probe-{uuid.uuid4().hex[:12]}"
                self._probe = begin_upload(self.client, self.scratch_bucket, key,
                                           "application/octet-stream")
            self._probe_parts += 1
            number = self._probe_parts
        try:
            return self._copy(self._probe, number,
                              {"Bucket": self.source_bucket, "Key": entry.key},
                              start, end - 1, entry.etag).crc
        except ClientError as error:
            raise self._source_error(error, entry, "a CRC-32 probe", self._probe) from error

    def upload_part(self, target: Temp | None, number: int, body: bytes | bytearray,
                    crc: int) -> str:
        upload = self._upload_of(target)
        self._count("UploadPart")
        try:
            response = self.client.upload_part(
                Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id,
                # bytes, not the bytearray: some S3 stacks (moto among them) reject bytearray
                PartNumber=number, Body=bytes(body), ChecksumCRC32=crc32_to_s3(crc),
            )
        except ClientError as error:
            if _code(error) == "NoSuchUpload":
                raise self._upload_gone(f"upload part {number}", upload) from error
            raise UploadError(f"upload part {number} of {upload.url} failed: "
                              f"{_code(error)}: {_message(error)}") from error
        return response["ETag"]

    def begin_temp(self, temp: Temp) -> None:
        key = f"{self.scratch_prefix}{temp.kind}-{temp.index:06d}"
        self._count("CreateMultipartUpload")
        upload = begin_upload(self.client, self.scratch_bucket, key, "application/octet-stream")
        with self._lock:
            self._temps[temp.index] = upload

    def complete_temp(self, temp: Temp, parts: list[CompletedPart], crc: int) -> None:
        upload = self._temps[temp.index]
        self._count("CompleteMultipartUpload")
        try:
            response = _complete(self.client, upload, parts, crc)
        except ClientError as error:
            raise UploadError(f"completing temporary object {upload.url} failed: "
                              f"{_code(error)}: {_message(error)}") from error
        with self._lock:
            self._temp_etags[temp.index] = response["ETag"]
        log.debug("completed temporary object %s (%s, %d B)", upload.url, temp.kind, temp.size)

    def discard_temp(self, temp: Temp, completed: bool) -> None:
        upload = self._temps.get(temp.index)
        if upload is None:
            return
        if completed:
            self._count("DeleteObject")
            self.client.delete_object(Bucket=upload.bucket, Key=upload.key)
        else:
            self._count("AbortMultipartUpload")
            abort_upload(self.client, upload)

    def close(self) -> None:
        """Abort the probe upload, whose parts were copied only for their CRC-32."""
        if self._probe is not None:
            self._count("AbortMultipartUpload")
            abort_upload(self.client, self._probe)
            self._probe = None


def clean_scratch(client, bucket: str, prefix: str, older_than_seconds: float = 0,
                  archive_key: str | None = None) -> tuple[int, int]:
    """Abort the multipart uploads and delete the objects under s3://bucket/prefix that are
    older than `older_than_seconds` (what killed runs left behind; a younger one may belong
    to a run still going). With `archive_key`, also abort that key's old uploads. Returns
    (uploads aborted, objects deleted)."""
    if not prefix.endswith("/") or prefix == "/":
        raise ValueError(f"refusing to clean {prefix!r}: give the scratch folder, ending '/'")
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    aborted = deleted = 0
    for key_prefix in [prefix] + ([archive_key] if archive_key else []):
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket,
                                                                      Prefix=key_prefix)
        for page in pages:
            for upload in page.get("Uploads", []):
                exact = key_prefix == prefix or upload["Key"] == archive_key
                if exact and upload["Initiated"] <= cutoff:
                    abort_upload(client, UploadTarget(bucket, upload["Key"], upload["UploadId"]))
                    aborted += 1
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["LastModified"] <= cutoff:
                client.delete_object(Bucket=bucket, Key=item["Key"])
                deleted += 1
    log.info("cleaned s3://%s/%s (older than %.0f s): %d uploads aborted, %d objects deleted",
             bucket, prefix, older_than_seconds, aborted, deleted)
    return aborted, deleted
