"""The exceptions of s3zip-dagster: one hierarchy, each message naming what to fix."""


class S3ZipError(Exception):
    """Base of every error this package raises on purpose."""


class SourceError(S3ZipError):
    """The source cannot be archived as asked: missing bucket, no objects, archived storage."""


class NamingError(S3ZipError):
    """Some keys cannot become archive names: unsafe paths, two keys with one name, or one
    path that would be both a file and a folder."""


class PlanError(S3ZipError):
    """The archive cannot be laid out within S3's limits."""


class SourceChangedError(S3ZipError):
    """A source object changed between the listing and the copy or read of its data."""


class UploadError(S3ZipError):
    """The archive's multipart upload failed; the message says which part and why."""


class IntegrityError(S3ZipError):
    """Bytes produced differ from the plan: a size or checksum does not match."""
