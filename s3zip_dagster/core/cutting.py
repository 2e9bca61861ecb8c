"""Cutting the archive's bytes into parts, by one of two strategies.

Both walk the entries in archive order and return blocks. A block is the parts (not yet
numbered) that start with the composed bytes ending in one big object's local header,
followed by the ranges of that object copied straight into the archive. Whatever makes a
block is done by one worker, which learns the object's CRC-32 from its copies before it
writes the header.

head-stream: when small data runs out before a big object, the upload part takes the head
of that object it needs to reach 5 MiB, read and uploaded by a worker.

zero-stream: no byte of a big object passes through a worker. A boundary between two big
objects whose composed bytes (local headers, small objects) are under 5 MiB is bridged by
a temporary object that S3 assembles:
- tail: [copy of the last 5 MiB of the previous object][upload of the composed bytes],
  copied whole into the archive;
- lead, where no previous object can lend a tail (the archive's start, or an object already
  used up): lead-base = [copy of 5 MiB of the next object, as filler][composed bytes], then
  lead = [copy of lead-base][copy of the next object's head]; the archive copies lead from
  the end of the filler, so it receives the composed bytes then the head.
Composed bytes of 5 MiB or more become plain upload parts.
"""

from dataclasses import dataclass, field

from .model import (
    Composed,
    DataPiece,
    Entry,
    HeaderPiece,
    PartSource,
    Piece,
    PlanSettings,
    SourceRange,
    TempRange,
)


class Block:
    """Unnumbered archive parts and the temporary objects they copy. `headers` are the big
    entries whose local headers the block composes; their data is copied in this block or
    the next ones."""

    __slots__ = ("headers", "parts", "temps")

    def __init__(self, header: int | None) -> None:
        self.headers: list[int] = [] if header is None else [header]
        self.parts: list[PartSource] = []
        self.temps: list[int] = []  # indices into Cut.temps


@dataclass
class TempSpec:
    kind: str
    parts: list[PartSource]


@dataclass
class Cut:
    blocks: list[Block] = field(default_factory=list)
    temps: list[TempSpec] = field(default_factory=list)
    trailing: list[Piece] = field(default_factory=list)  # composed bytes of the final part

    @property
    def part_count(self) -> int:
        """Parts of the archive's upload, the final part included."""
        return sum(len(b.parts) for b in self.blocks) + 1

    def open_block(self, header: int | None) -> Block:
        self.blocks.append(Block(header))
        return self.blocks[-1]

    def add_temp(self, kind: str, parts: list[PartSource]) -> int:
        self.temps.append(TempSpec(kind, parts))
        self.blocks[-1].temps.append(len(self.temps) - 1)
        return len(self.temps) - 1


def piece_size(piece: Piece, entries: list[Entry]) -> int:
    if isinstance(piece, HeaderPiece):
        return entries[piece.entry].header_size
    return piece.end - piece.start


def split_range(start: int, end: int, max_size: int) -> list[tuple[int, int]]:
    """Split [start, end) into the fewest ranges of at most max_size, their sizes within
    1 B of each other, so that none falls under the minimum when the whole is over it."""
    if end <= start:
        return []
    count = -(-(end - start) // max_size)
    base, extra = divmod(end - start, count)
    ranges = []
    for i in range(count):
        size = base + (1 if i < extra else 0)
        ranges.append((start, start + size))
        start += size
    return ranges


def _can_cut_after(piece: Piece, entries: list[Entry]) -> bool:
    """A part may end after a piece unless it is the local header of an entry whose data
    follows: header and data of a small entry stay in one part, to share its CRC-32."""
    return isinstance(piece, DataPiece) or entries[piece.entry].size == 0


def chunk_pieces(pieces: list[Piece], entries: list[Entry], target: int
                 ) -> tuple[list[Composed], list[Piece]]:
    """Cut composed bytes into parts of at least `target` bytes; return them and the rest,
    which is shorter than `target`."""
    chunks: list[Composed] = []
    current: list[Piece] = []
    size = 0
    for piece in pieces:
        current.append(piece)
        size += piece_size(piece, entries)
        if size >= target and _can_cut_after(piece, entries):
            chunks.append(Composed(tuple(current), size))
            current, size = [], 0
    return chunks, current


def _upload_all(pieces: list[Piece], entries: list[Entry], target: int, minimum: int
                ) -> list[Composed]:
    """Cut composed bytes of at least `minimum` into parts that are all >= minimum."""
    chunks, rest = chunk_pieces(pieces, entries, target)
    if rest:
        rest_size = sum(piece_size(p, entries) for p in rest)
        if chunks and rest_size < minimum:
            last = chunks.pop()
            chunks.append(Composed(last.pieces + tuple(rest), last.size + rest_size))
        else:
            chunks.append(Composed(tuple(rest), rest_size))
    return chunks


def _copy_direct(cut: Cut, entry: Entry | None, start: int, end: int,
                 settings: PlanSettings) -> None:
    """Ranges of a big object copied straight into the archive, in the current block."""
    if entry is None:
        return
    for a, b in split_range(start, end, settings.max_part_size):
        cut.blocks[-1].parts.append(SourceRange(entry.index, a, b))


def _close(cut: Cut, pieces: list[Piece], entries: list[Entry], target: int) -> Cut:
    """Composed bytes after the last big object: full parts, then the final part's share."""
    chunks, rest = chunk_pieces(pieces, entries, target)
    for chunk in chunks:
        cut.open_block(None).parts.append(chunk)  # one block each: batches can share them
    cut.trailing = rest
    return cut


def cut_zero_stream(entries: list[Entry], settings: PlanSettings, upload_part_size: int) -> Cut:
    """Parts in which no byte of a big object passes through a worker (see module doc)."""
    minimum = settings.min_part_size
    cut = Cut()
    gap: list[Piece] = []
    gap_size = 0
    previous: Entry | None = None
    previous_from = 0  # where the previous big object's bytes not yet placed begin

    # A lead that took a whole object (under twice the minimum) left nothing of it to lend
    # the next boundary a tail; it takes that boundary's composed bytes as its last part
    # instead: (lead index, its block, its archive part's index in the block).
    open_lead: tuple[int, Block, int] | None = None

    for entry in entries:
        gap.append(HeaderPiece(entry.index))
        gap_size += entry.header_size
        if entry.size < settings.copy_threshold:
            if entry.size:
                gap.append(DataPiece(entry.index, 0, entry.size))
                gap_size += entry.size
            continue

        # Invariant: what is left of the previous object is empty or at least `minimum`.
        left = previous.size - previous_from if previous else 0
        if gap_size >= minimum:
            _copy_direct(cut, previous, previous_from, previous.size if previous else 0,
                         settings)
            *leading, last = _upload_all(gap, entries, upload_part_size, minimum)
            for chunk in leading:
                cut.open_block(None).parts.append(chunk)
            cut.open_block(entry.index).parts.append(last)
            start = 0
        elif open_lead is not None:
            lead, block, at = open_lead
            cut.temps[lead].parts.append(Composed(tuple(gap), gap_size))
            old = block.parts[at]
            assert isinstance(old, TempRange)
            block.parts[at] = TempRange(lead, old.start, old.end + gap_size)
            block.headers.append(entry.index)
            cut.open_block(None)  # the entry's own copies follow in a block of their own
            start = 0
        elif previous is not None and left >= minimum:
            tail = left if left < 2 * minimum else minimum
            _copy_direct(cut, previous, previous_from, previous.size - tail, settings)
            cut.open_block(entry.index)
            temp = cut.add_temp("tail", [
                SourceRange(previous.index, previous.size - tail, previous.size),
                Composed(tuple(gap), gap_size),
            ])
            cut.blocks[-1].parts.append(TempRange(temp, 0, tail + gap_size))
            start = 0
        else:
            head = minimum - gap_size
            if entry.size - head < minimum:
                head = entry.size  # what would be left could not be a part of its own
            block = cut.open_block(entry.index)
            base = cut.add_temp("lead-base", [
                SourceRange(entry.index, 0, minimum, filler=True),
                Composed(tuple(gap), gap_size),
            ])
            lead = cut.add_temp("lead", [
                TempRange(base, 0, minimum + gap_size),
                SourceRange(entry.index, 0, head),
            ])
            block.parts.append(TempRange(lead, minimum, minimum + gap_size + head))
            start = head
        open_lead = None
        if start == entry.size and cut.blocks[-1].temps:
            lead = cut.blocks[-1].temps[-1]
            open_lead = (lead, cut.blocks[-1], len(cut.blocks[-1].parts) - 1)
        gap, gap_size = [], 0
        previous, previous_from = entry, start

    if previous is not None:
        _copy_direct(cut, previous, previous_from, previous.size, settings)
    return _close(cut, gap, entries, upload_part_size)


def cut_head_stream(entries: list[Entry], settings: PlanSettings, upload_part_size: int,
                    copy_threshold: int) -> Cut:
    """Parts in which a worker streams the head of a big object when small data runs out."""
    minimum = settings.min_part_size
    cut = Cut()
    pieces: list[Piece] = []
    pending = 0

    for entry in entries:
        pieces.append(HeaderPiece(entry.index))
        pending += entry.header_size
        head = max(0, minimum - pending)
        copyable = entry.size >= copy_threshold and entry.size - head >= minimum

        if not copyable:
            if entry.size:
                pieces.append(DataPiece(entry.index, 0, entry.size))
                pending += entry.size
            if pending >= upload_part_size:
                cut.open_block(None).parts.append(Composed(tuple(pieces), pending))
                pieces, pending = [], 0
            continue

        if head:
            pieces.append(DataPiece(entry.index, 0, head))
            pending += head
        cut.open_block(entry.index).parts.append(Composed(tuple(pieces), pending))
        pieces, pending = [], 0
        _copy_direct(cut, entry, head, entry.size, settings)

    cut.trailing = pieces
    return cut
