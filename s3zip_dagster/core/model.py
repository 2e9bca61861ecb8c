"""What a plan is made of: entries, pieces, parts, temporary objects, batches, settings.

These are plain data: a batch pickles or serialises to JSON as it is, so it can run in
another process or an AWS Lambda.
"""

from dataclasses import dataclass, field

from . import zipformat
from .errors import PlanError
from .limits import (
    MAX_NAME_BYTES,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    ZIP32_MAX_SIZE,
    MiB,
)

# How big objects reach the archive (see README, "How it works"):
ZERO_STREAM = "zero-stream"  # only S3 copies their bytes, through temporary objects if needed
HEAD_STREAM = "head-stream"  # a worker streams the head a part needs to reach 5 MiB
STRATEGIES = (ZERO_STREAM, HEAD_STREAM)

# The longest local header: a name of 0xFFFF bytes, the timestamp and the zip64 extras.
MAX_LOCAL_HEADER_SIZE = zipformat.local_header_size(b"n" * MAX_NAME_BYTES, ZIP32_MAX_SIZE)


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One object of the source listing."""

    key: str
    size: int
    etag: str
    mtime: int  # LastModified as Unix seconds (UTC)
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class PlanSettings:
    """Every threshold the planner uses, in one place."""

    min_part_size: int = MIN_PART_SIZE
    max_part_size: int = MAX_PART_SIZE
    max_parts: int = MAX_PARTS
    max_archive_size: int = MAX_OBJECT_SIZE
    upload_part_size: int = 8 * MiB  # an upload part is sent once it reaches this size
    max_upload_part_size: int = 256 * MiB  # how far upload parts may grow to fit max_parts
    copy_threshold: int = MIN_PART_SIZE  # objects of this size or more are copied by S3
    batch_count: int = 2
    strategy: str = HEAD_STREAM  # the faster of the two in `make bench` (README)

    def __post_init__(self) -> None:
        if not 0 < self.min_part_size <= self.upload_part_size <= self.max_upload_part_size:
            raise PlanError(
                "settings need 0 < min_part_size <= upload_part_size <= max_upload_part_size; "
                f"got {self.min_part_size}, {self.upload_part_size}, {self.max_upload_part_size}"
            )
        if (self.max_upload_part_size + self.copy_threshold + MAX_LOCAL_HEADER_SIZE
                > self.max_part_size):
            raise PlanError(
                "max_upload_part_size + copy_threshold must stay under max_part_size by "
                f"{MAX_LOCAL_HEADER_SIZE} B (the longest local header); got "
                f"{self.max_upload_part_size} + {self.copy_threshold} and {self.max_part_size}")
        if self.copy_threshold < self.min_part_size:
            raise PlanError("copy_threshold must be at least min_part_size")
        if self.batch_count < 1 or self.max_parts < 3:
            raise PlanError("batch_count must be >= 1 and max_parts >= 3")
        if self.strategy not in STRATEGIES:
            raise PlanError(f"strategy must be one of {', '.join(STRATEGIES)}; "
                            f"got {self.strategy!r}")
        # Zero-stream adds composed bytes under min_part_size to the upload part before
        # them, and copies a tail object (up to twice min_part_size of the previous object
        # and composed bytes under min_part_size) as one part.
        if (self.strategy == ZERO_STREAM and self.max_upload_part_size + self.copy_threshold
                + self.min_part_size + MAX_LOCAL_HEADER_SIZE > self.max_part_size):
            raise PlanError(
                "zero-stream needs max_upload_part_size + copy_threshold + min_part_size to "
                f"stay under max_part_size by {MAX_LOCAL_HEADER_SIZE} B (the longest local "
                f"header); got {self.max_upload_part_size} + {self.copy_threshold} + "
                f"{self.min_part_size} and {self.max_part_size}")

    @property
    def max_copy_threshold(self) -> int:
        """How far the copy threshold may grow to fit max_parts. An upload part holds up to
        upload_part_size, then one more local header and an object under the threshold: it
        must still fit in max_part_size."""
        return min(self.max_upload_part_size,
                   self.max_part_size - self.max_upload_part_size - MAX_LOCAL_HEADER_SIZE)


@dataclass(frozen=True)
class NamingOptions:
    """How source keys become entry names."""

    strip_prefix: bool = True
    name_prefix: str = ""


@dataclass(slots=True)
class Entry:
    """One entry of the archive: its source object and where its local header lies."""

    index: int
    key: str
    name: str
    size: int
    etag: str
    mtime: int
    offset: int  # of the local header in the archive
    header_size: int

    @property
    def name_bytes(self) -> bytes:
        return self.name.encode("utf-8")

    @property
    def data_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.size == 0


@dataclass(slots=True)
class HeaderPiece:
    """The local header of entry `entry`, inside composed bytes."""

    entry: int


@dataclass(slots=True)
class DataPiece:
    """Bytes [start, end) of entry `entry`'s data, read by a worker into composed bytes."""

    entry: int
    start: int
    end: int


Piece = HeaderPiece | DataPiece


@dataclass(slots=True)
class SourceRange:
    """Bytes [start, end) of entry `entry`'s source object, copied by S3.

    A filler range only pads a temporary object to S3's part minimum: its bytes never
    reach the archive, so it does not count towards the entry's data or CRC-32.
    """

    entry: int
    start: int
    end: int
    filler: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(slots=True)
class TempRange:
    """Bytes [start, end) of temporary object `temp`, copied by S3 once it is complete."""

    temp: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(slots=True)
class Composed:
    """Bytes a worker composes and uploads: local headers and the data of small objects."""

    pieces: tuple[Piece, ...]
    size: int


PartSource = SourceRange | TempRange | Composed


@dataclass(slots=True)
class Part:
    """Part `number` of a multipart upload (the archive's or a temporary object's)."""

    number: int
    offset: int  # within the object the part belongs to
    source: PartSource

    @property
    def size(self) -> int:
        return self.source.size

    @property
    def is_copy(self) -> bool:
        return not isinstance(self.source, Composed)


@dataclass
class Temp:
    """A temporary object of this run, assembled by its own multipart upload under the
    scratch prefix, copied into the archive (or into another temporary object), then
    deleted. `kind` says why it exists: tail, lead-base, lead or group."""

    index: int
    kind: str
    parts: list[Part]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


@dataclass
class Batch:
    """Parts one worker makes on its own, with the temporary objects they need (in the
    order they must be completed), the ranges whose CRC-32 it must learn by a scratch copy,
    and every entry it touches."""

    index: int
    parts: list[Part]
    temps: list[Temp]
    probes: list[SourceRange]
    entries: dict[int, Entry]
    headers: list[int]  # entries whose local header this batch composes

    @property
    def part_count(self) -> int:
        return len(self.parts)


@dataclass(frozen=True)
class FinalPart:
    """The last part: trailing small entries, the central directory and the end records."""

    number: int
    offset: int
    pieces: tuple[Piece, ...]
    directory_offset: int
    directory_size: int
    end_size: int

    @property
    def size(self) -> int:
        return self.directory_offset + self.directory_size + self.end_size - self.offset


@dataclass
class Plan:
    """The full layout of one archive."""

    source_bucket: str
    source_prefix: str
    entries: list[Entry]
    batches: list[Batch]
    final: FinalPart
    settings: PlanSettings
    scratch_bucket: str = ""
    scratch_prefix: str = ""
    skipped_keys: list[str] = field(default_factory=list)

    @property
    def archive_size(self) -> int:
        return self.final.offset + self.final.size

    @property
    def part_count(self) -> int:
        return self.final.number

    def archive_parts(self) -> list[Part]:
        """Every part of the archive's upload but the final part, in order."""
        return [part for batch in self.batches for part in batch.parts]

    def temps(self) -> list[Temp]:
        return [temp for batch in self.batches for temp in batch.temps]

    def all_parts(self) -> list[Part]:
        """The archive's parts and every temporary object's parts."""
        return self.archive_parts() + [p for t in self.temps() for p in t.parts]

    @property
    def copy_parts(self) -> int:
        return sum(1 for p in self.archive_parts() if p.is_copy)

    @property
    def upload_parts(self) -> int:
        return self.part_count - self.copy_parts  # the final part is uploaded too

    @property
    def copied_bytes(self) -> int:
        """Bytes S3 copies server-side: into the archive and into temporary objects."""
        return sum(p.size for p in self.all_parts() if p.is_copy) + sum(
            p.size for b in self.batches for p in b.probes)

    @property
    def extra_copied_bytes(self) -> int:
        """Server-side copying beyond the big objects' own data: temporary objects."""
        direct = sum(p.size for p in self.archive_parts() if isinstance(p.source, SourceRange))
        return self.copied_bytes - direct

    @property
    def read_bytes(self) -> int:
        """Bytes of source data workers download (GET) to compose upload parts."""
        pieces = [piece for p in self.all_parts() if isinstance(p.source, Composed)
                  for piece in p.source.pieces]
        pieces += self.final.pieces
        return sum(p.end - p.start for p in pieces if isinstance(p, DataPiece))

    @property
    def uploaded_bytes(self) -> int:
        """Bytes workers send to S3 in upload parts, the final part included."""
        return self.final.size + sum(
            p.size for p in self.all_parts() if isinstance(p.source, Composed))

    @property
    def zip64(self) -> bool:
        return zipformat.needs_zip64_end(
            len(self.entries), self.final.directory_offset, self.final.directory_size
        ) or any(
            zipformat.needs_zip64_size(e.size) or e.offset >= zipformat.ZIP32_MAX_SIZE
            for e in self.entries
        )


