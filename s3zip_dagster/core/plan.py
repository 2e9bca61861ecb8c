"""The plan: where every entry, header and part of the archive lies, and which batch makes it.

A STORE archive's layout is known before any data moves, so the plan fixes every offset:
entries in key order, each a local header then its data, then the central directory and
the end records. `cutting` cuts those bytes into the parts of one S3 multipart upload:
copy parts (S3 copies a range of a source object or of a temporary object), upload parts
(a worker composes local headers and small objects) and the final part (the last small
entries, the central directory and the end records).

Blocks of parts are grouped into batches; a batch depends on no other batch, and only the
final part waits for all of them. Where S3's 10,000 parts are not enough, each batch first
assembles its parts into group objects and the archive copies those.
"""

import logging
import uuid

from . import zipformat
from .cutting import Block, Cut, cut_head_stream, cut_zero_stream, split_range
from .errors import PlanError, SourceError
from .limits import MAX_PARTS
from .model import (  # noqa: F401  (re-exported: the plan's vocabulary)
    HEAD_STREAM,
    STRATEGIES,
    ZERO_STREAM,
    Batch,
    Composed,
    DataPiece,
    Entry,
    FinalPart,
    HeaderPiece,
    NamingOptions,
    Part,
    PartSource,
    Piece,
    Plan,
    PlanSettings,
    SourceObject,
    SourceRange,
    Temp,
    TempRange,
)
from .names import archive_names, check_names

log = logging.getLogger(__name__)

ARCHIVED_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})  # S3: restore before GET
DEFAULT_SCRATCH_PREFIX = ".s3zip-scratch/"  # temporary objects, under a folder per run

# Relative cost of work in a batch, used only to balance batches: a byte copied by S3 costs
# far less of a worker's time than a byte it downloads and uploads, and each request has a
# fixed latency.
_COST_PER_STREAMED_BYTE = 1.0
_COST_PER_COPIED_BYTE = 1.0 / 16
_COST_PER_REQUEST = 256 * 1024


def select_entries(
    objects: list[SourceObject],
    bucket: str,
    prefix: str,
    naming: NamingOptions,
    exclude_keys: frozenset[str] = frozenset(),
) -> tuple[list[tuple[SourceObject, str]], list[str]]:
    """Pair each archived object with its entry name, in key order; return also the keys
    left out (the archive itself, the source prefix's own folder marker).

    Raises SourceError for archived storage classes and NamingError for bad names, before
    anything is written.
    """
    chosen: list[tuple[SourceObject, str]] = []
    skipped: list[str] = []
    ordered = sorted(objects, key=lambda o: o.key)
    names = archive_names([o.key for o in ordered], prefix, naming.strip_prefix,
                          naming.name_prefix)
    for obj, name in zip(ordered, names, strict=True):
        if obj.key in exclude_keys or (name == "" and obj.size == 0):
            skipped.append(obj.key)
            continue
        chosen.append((obj, name))

    archived = [o.key for o, _ in chosen if o.storage_class in ARCHIVED_STORAGE_CLASSES]
    if archived:
        listed = "\n  ".join(f"s3://{bucket}/{k}" for k in archived[:20])
        raise SourceError(
            f"{len(archived)} object(s) are in GLACIER or DEEP_ARCHIVE storage and cannot be "
            f"read or copied until restored:\n  {listed}\n"
            "Restore them (S3 RestoreObject) and copy them back to a readable class, or "
            "leave them out with `exclude` patterns. Nothing was written."
        )

    if not chosen:
        raise SourceError(
            f"no objects to archive under s3://{bucket}/{prefix} "
            "(after include/exclude patterns). Check the bucket, prefix and patterns."
        )

    check_names([o.key for o, _ in chosen], [n for _, n in chosen], [o.size for o, _ in chosen],
                bucket)
    return chosen, skipped


def lay_out_entries(chosen: list[tuple[SourceObject, str]]) -> list[Entry]:
    """Give each entry its offset: local header, then data, one after another."""
    entries = []
    offset = 0
    for index, (obj, name) in enumerate(chosen):
        header_size = zipformat.local_header_size(name.encode("utf-8"), obj.size)
        entries.append(Entry(index, obj.key, name, obj.size, obj.etag, obj.mtime, offset,
                             header_size))
        offset += header_size + obj.size
    return entries


def _fit(entries: list[Entry], settings: PlanSettings) -> tuple[Cut, bool]:
    """Cut parts; grow upload parts (and, for head-stream, the copy threshold) until they
    fit in max_parts. Returns the cut and whether zero-stream must group its parts."""
    if settings.strategy == ZERO_STREAM:
        return _fit_zero_stream(entries, settings)
    upload_part_size = settings.upload_part_size
    copy_threshold = settings.copy_threshold
    while True:
        cut = cut_head_stream(entries, settings, upload_part_size, copy_threshold)
        if cut.part_count <= settings.max_parts:
            if upload_part_size != settings.upload_part_size:
                log.info("grew upload parts to %d B to fit %d parts", upload_part_size,
                         settings.max_parts)
            return cut, False
        if upload_part_size < settings.max_upload_part_size:
            upload_part_size = min(2 * upload_part_size, settings.max_upload_part_size)
        elif copy_threshold < settings.max_copy_threshold:
            copy_threshold = min(2 * copy_threshold, settings.max_copy_threshold)
        else:
            raise PlanError(
                f"the archive needs {cut.part_count} parts even with upload parts of "
                f"{upload_part_size} B; S3 allows {settings.max_parts}. Each object of "
                f"{copy_threshold} B or more needs two parts of its own. Use the zero-stream "
                "strategy, split the source into several archives, or raise "
                "max_upload_part_size. Nothing was written."
            )


def _fit_zero_stream(entries: list[Entry], settings: PlanSettings) -> tuple[Cut, bool]:
    """Cut once; when the parts are too many, grow upload parts only if the composed parts
    alone are the excess (copies and temporary objects do not shrink), else group."""
    cut = cut_zero_stream(entries, settings, settings.upload_part_size)
    if cut.part_count <= settings.max_parts:
        return cut, False
    composed = sum(1 for b in cut.blocks for p in b.parts if isinstance(p, Composed))
    fixed = cut.part_count - composed
    size = settings.upload_part_size
    while size < settings.max_upload_part_size and (
            fixed + -(-composed * settings.upload_part_size // size) > settings.max_parts):
        size = min(2 * size, settings.max_upload_part_size)
    if fixed + -(-composed * settings.upload_part_size // size) <= settings.max_parts:
        grown = cut_zero_stream(entries, settings, size)
        if grown.part_count <= settings.max_parts:
            log.info("grew upload parts to %d B to fit %d parts", size, settings.max_parts)
            return grown, False
    log.info("%d parts are more than %d: assembling them into group objects first",
             cut.part_count, settings.max_parts)
    return cut, True


def _block_cost(block: Block, cut: Cut) -> float:
    sources = list(block.parts) + [s for t in block.temps for s in cut.temps[t].parts]
    streamed = sum(2 * s.size for s in sources if isinstance(s, Composed))
    copied = sum(s.size for s in sources if not isinstance(s, Composed))
    return (streamed * _COST_PER_STREAMED_BYTE + copied * _COST_PER_COPIED_BYTE
            + len(sources) * _COST_PER_REQUEST)


def _group_blocks(cut: Cut, batch_count: int) -> list[list[Block]]:
    """Split the blocks, in order, into at most batch_count runs of similar cost. There is
    always at least one run, even an empty one, so that a fan-out has a branch to run."""
    costs = [_block_cost(b, cut) for b in cut.blocks]
    total = sum(costs)
    count = max(1, min(batch_count, len(cut.blocks)))
    runs: list[list[Block]] = [[] for _ in range(count)]
    done = 0.0
    for block, cost in zip(cut.blocks, costs, strict=True):
        middle = done + cost / 2  # a block goes where most of its cost falls
        runs[min(count - 1, int(middle / total * count)) if total else 0].append(block)
        done += cost
    return [run for run in runs if run] or [[]]


def _number(sources: list[PartSource], first: int = 1, offset: int = 0) -> list[Part]:
    parts = []
    for number, source in enumerate(sources, start=first):
        parts.append(Part(number, offset, source))
        offset += source.size
    return parts


def _entries_of(sources: list[PartSource]) -> set[int]:
    touched = set()
    for source in sources:
        if isinstance(source, SourceRange):
            touched.add(source.entry)
        elif isinstance(source, Composed):
            touched.update(p.entry for p in source.pieces)
    return touched


def _make_batches(cut: Cut, entries: list[Entry], settings: PlanSettings, group: bool
                  ) -> list[Batch]:
    """Number the parts, make the temporary objects, and learn which ranges each batch must
    probe for a CRC-32 because another batch copies them."""
    runs = _group_blocks(cut, settings.batch_count)
    temp_index = len(cut.temps)
    group_size = min(settings.max_parts, MAX_PARTS)

    ranges_by_entry: dict[int, list[tuple[int, SourceRange]]] = {}
    for run_index, run in enumerate(runs):
        for block in run:
            sources = list(block.parts) + [s for t in block.temps for s in cut.temps[t].parts]
            for source in sources:
                if isinstance(source, SourceRange) and not source.filler:
                    ranges_by_entry.setdefault(source.entry, []).append((run_index, source))

    batches = []
    number = 1
    offset = 0
    for run_index, run in enumerate(runs):
        temps = [Temp(t, cut.temps[t].kind, _number(cut.temps[t].parts))
                 for block in run for t in block.temps]
        sources: list[PartSource] = [s for block in run for s in block.parts]

        if group:
            grouped: list[PartSource] = []
            for start in range(0, len(sources), group_size):
                members = sources[start:start + group_size]
                temps.append(Temp(temp_index, "group", _number(members)))
                size = sum(s.size for s in members)
                grouped += [TempRange(temp_index, a, b)
                            for a, b in split_range(0, size, settings.max_part_size)]
                temp_index += 1
            sources = grouped

        parts = _number(sources, number, offset)
        number += len(parts)
        offset += sum(p.size for p in parts)

        headers = [h for b in run for h in b.headers]
        probes = [r for h in headers for where, r in ranges_by_entry.get(h, ())
                  if where != run_index]
        touched = set(headers) | {p.entry for p in probes}
        touched |= _entries_of([p.source for p in parts])
        touched |= _entries_of([p.source for t in temps for p in t.parts])
        batches.append(Batch(len(batches), parts, temps, probes,
                             {i: entries[i] for i in sorted(touched)}, headers))
    return batches


def build_plan(
    objects: list[SourceObject],
    source_bucket: str,
    source_prefix: str,
    settings: PlanSettings = PlanSettings(),
    naming: NamingOptions = NamingOptions(),
    exclude_keys: frozenset[str] = frozenset(),
    scratch_bucket: str = "",
    scratch_root: str = DEFAULT_SCRATCH_PREFIX,
) -> Plan:
    """Lay out the archive of `objects` and cut it into parts and batches.

    Temporary objects go to s3://scratch_bucket/scratch_root<run id>/, a folder no other
    run uses; objects under scratch_root in the source are never archived. Raises
    SourceError, NamingError or PlanError when the archive cannot be made as asked.
    """
    if not scratch_root or not scratch_root.endswith("/"):
        raise PlanError(f"the scratch prefix must be a folder ending in '/'; got "
                        f"{scratch_root!r}")
    if scratch_bucket in ("", source_bucket):
        objects = [o for o in objects if not o.key.startswith(scratch_root)]
    chosen, skipped = select_entries(objects, source_bucket, source_prefix, naming,
                                     exclude_keys)
    entries = lay_out_entries(chosen)
    cut, group = _fit(entries, settings)

    directory_offset = entries[-1].data_offset + entries[-1].size
    directory_size = sum(
        zipformat.central_header_size(e.name_bytes, e.size, e.offset) for e in entries)
    end_size = zipformat.end_records_size(len(entries), directory_offset, directory_size)
    batches = _make_batches(cut, entries, settings, group)
    last = batches[-1].parts[-1] if batches[-1].parts else None
    final_offset = last.offset + last.size if last else 0
    final_number = last.number + 1 if last else 1
    final = FinalPart(final_number, final_offset, tuple(cut.trailing), directory_offset,
                      directory_size, end_size)

    if final.number > settings.max_parts:
        raise PlanError(
            f"the archive needs {final.number} parts even after assembling its parts into "
            f"group objects; S3 allows {settings.max_parts}. Split the source into several "
            "archives. Nothing was written.")
    archive_size = final.offset + final.size
    if archive_size > settings.max_archive_size:
        raise PlanError(
            f"the archive of s3://{source_bucket}/{source_prefix} would be {archive_size} B; "
            f"the target allows {settings.max_archive_size} B per object. Split the source "
            "into several archives with include/exclude patterns. Nothing was written."
        )
    if final.size > settings.max_part_size:
        raise PlanError(
            f"the central directory of {len(entries)} entries needs a final part of "
            f"{final.size} B, over S3's {settings.max_part_size} B. Split the source into "
            "several archives. Nothing was written."
        )

    plan = Plan(source_bucket, source_prefix, entries, batches, final, settings,
                scratch_bucket, f"{scratch_root}{uuid.uuid4().hex}/", skipped)
    log.info(
        "planned %d entries into an archive of %d B (%s): %d copy parts, %d upload parts, "
        "%d temporary objects, %d batches", len(entries), plan.archive_size, settings.strategy,
        plan.copy_parts, plan.upload_parts, len(plan.temps()), len(batches))
    return plan
