"""Archive names from S3 keys: prefix removal, glob filters and extraction safety."""

import re
from collections.abc import Iterable
from functools import lru_cache

from .errors import NamingError

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_SHOWN_IN_ERRORS = 20  # keys listed in one error message; the count says how many more


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob: `**` crosses folders, `*` and `?` stay within one, `[...]` is a set."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def matches_glob(path: str, pattern: str) -> bool:
    """True when `path` (relative to the source prefix) matches the glob `pattern`."""
    return _glob_regex(pattern).match(path) is not None


def selected(path: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """An object is archived when it matches an include pattern (or none are given) and
    matches no exclude pattern."""
    include = list(include)
    if include and not any(matches_glob(path, p) for p in include):
        return False
    return not any(matches_glob(path, p) for p in exclude)


def prefix_folder(prefix: str) -> str:
    """The folder part of a prefix, up to and including its last '/': what names lose.

    A prefix that ends inside a name (`exports/2026-`) keeps that name's start in the
    archive (`2026-01/a.csv`), so no entry name ever starts with '/' or a name fragment.
    """
    return prefix[: prefix.rfind("/") + 1]


def relative_key(key: str, prefix: str) -> str:
    """The key less the prefix's folder: what entry names and glob patterns see."""
    return key[len(prefix_folder(prefix)) :]


def archive_name(key: str, prefix: str, strip_prefix: bool, name_prefix: str) -> str:
    """The entry name of `key`: the key less the prefix's folder (when asked), behind
    `name_prefix`."""
    return archive_names([key], prefix, strip_prefix, name_prefix)[0]


def archive_names(keys: list[str], prefix: str, strip_prefix: bool, name_prefix: str
                  ) -> list[str]:
    """archive_name of many keys, the prefix's folder found once."""
    cut = len(prefix_folder(prefix)) if strip_prefix else 0
    return [name_prefix + key[cut:] for key in keys]


def unsafe_reason(name: str, size: int) -> str | None:
    """Why extracting an entry of this name could write outside the target folder, or
    would lose data; None when the name is safe."""
    if not name:
        return "the name is empty"
    if name.startswith("/"):
        return "it starts with '/'"
    if "\\" in name:
        return "it contains a backslash"
    if _DRIVE_LETTER.match(name):
        return "it starts with a drive letter"
    if "\x00" in name:
        return "it contains a NUL character"
    segments = name[:-1].split("/") if name.endswith("/") else name.split("/")
    for segment in segments:
        if segment in (".", ".."):
            return f"it has a '{segment}' segment"
        if segment == "":
            return "it has an empty segment ('//')"
    if name.endswith("/") and size > 0:
        return f"it ends with '/' (a folder) but holds {size} bytes"
    return None


def _file_and_folder_clashes(keys: list[str], names: list[str], bucket: str) -> list[str]:
    """Paths that are a file in one entry and a folder in another, by a folder entry `x/`
    or by a deeper name `x/y`. The names differ, but extracting them needs one path to be
    both, which no extractor can do: the second entry fails or is lost."""
    folders: dict[str, str] = {}  # folder path -> the first key that makes it a folder
    for key, name in zip(keys, names, strict=False):
        segments = name.rstrip("/").split("/")
        for depth in range(1, len(segments)):
            folders.setdefault("/".join(segments[:depth]), key)
        if name.endswith("/"):
            folders.setdefault(name[:-1], key)

    return [
        f"s3://{bucket}/{key} is a file and s3://{bucket}/{folders[name]} makes {name!r} "
        "a folder"
        for key, name in zip(keys, names, strict=False)
        if not name.endswith("/") and name in folders
    ]


def check_names(keys: list[str], names: list[str], sizes: list[int], bucket: str) -> None:
    """Raise NamingError listing every unsafe name, every name shared by two keys and every
    path that would be both a file and a folder."""
    problems = []
    for key, name, size in zip(keys, names, sizes, strict=False):
        reason = unsafe_reason(name, size)
        if reason:
            problems.append(f"s3://{bucket}/{key} -> {name!r}: {reason}")

    first_key: dict[str, str] = {}
    for key, name in zip(keys, names, strict=False):
        if name in first_key:
            problems.append(
                f"s3://{bucket}/{first_key[name]} and s3://{bucket}/{key} "
                f"both map to the archive name {name!r}"
            )
        else:
            first_key[name] = key
    problems += _file_and_folder_clashes(keys, names, bucket)

    if problems:
        shown = "\n  ".join(problems[:_SHOWN_IN_ERRORS])
        more = len(problems) - _SHOWN_IN_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise NamingError(
            f"{len(problems)} source key(s) cannot be written as archive names:\n  {shown}{tail}"
            "\nNothing was written. Exclude these keys with `exclude` patterns, or rename them."
        )
