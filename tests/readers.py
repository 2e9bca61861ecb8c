"""Every ZIP reader the project promises to satisfy, run on one archive file.

A missing reader is a failure, never a skip: `make test` installs them all.
"""

import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path

READERS = ("unzip", "7zz", "bsdtar", "java", "javac", "zipdetails")
JAVA_SOURCE = Path(__file__).parent / "java" / "ZipCheck.java"


def require_tools() -> None:
    missing = [tool for tool in READERS if shutil.which(tool) is None]
    if missing:
        raise AssertionError(f"ZIP readers missing: {missing}; run `make tools`")


def compile_java(workdir: Path) -> Path:
    """Compile ZipCheck.java into workdir; return the class folder."""
    require_tools()
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-d", str(workdir), str(JAVA_SOURCE)], check=True)
    return workdir


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, **kwargs)
    assert result.returncode == 0, (
        f"{command[0]} rejected the archive (exit {result.returncode}):\n"
        f"{result.stdout[-3000:]!r}\n{result.stderr[-3000:]!r}")
    return result


def python_entries(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, CRC-32) as Python's zipfile reads them, data CRCs verified."""
    entries = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED, info.filename
            assert not info.flag_bits & 0x08, f"{info.filename} uses a data descriptor"
            crc = 0
            size = 0
            with archive.open(info) as stream:
                while chunk := stream.read(1 << 22):
                    crc = zlib.crc32(chunk, crc)
                    size += len(chunk)
            assert (size, crc) == (info.file_size, info.CRC), info.filename
            entries[info.filename] = (size, crc)
    return entries


def bsdtar_bytes(path: Path) -> int:
    """Bytes libarchive extracts to stdout (all entries, concatenated)."""
    process = subprocess.Popen(["bsdtar", "-xOf", str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    total = 0
    assert process.stdout is not None
    while chunk := process.stdout.read(1 << 22):
        total += len(chunk)
    stderr = process.stderr.read() if process.stderr else b""
    assert process.wait() == 0, f"bsdtar rejected the archive: {stderr[-2000:]!r}"
    return total


def check_with_all_readers(path: Path, java_classes: Path,
                           expected: dict[str, tuple[int, int]] | None = None,
                           zipdetails: bool = True) -> dict:
    """Run every reader; each must accept the archive and agree on entries and bytes.

    `expected` maps entry name -> (size, CRC-32). Returns Python's view of the entries.
    `zipdetails=False` leaves zipdetails out, for archives of tens of thousands of entries
    only: zipdetails 2.104 compares each central header with every earlier one, and takes
    over 20 minutes for 65,600 entries.
    """
    require_tools()
    entries = python_entries(path)
    if expected is not None:
        assert entries == expected
    total = sum(size for size, _ in entries.values())

    _run(["unzip", "-tqq", str(path)])
    seven = _run(["7zz", "t", str(path)], text=True)
    assert "Everything is Ok" in seven.stdout, seven.stdout[-2000:]
    assert bsdtar_bytes(path) == total

    java = _run(["java", "-cp", str(java_classes), "ZipCheck", str(path)], text=True)
    lines = java.stdout.split("\n")
    assert f"ZipFile {len(entries)} {total}" in lines, java.stdout
    assert f"ZipInputStream {len(entries)} {total}" in lines, java.stdout

    if zipdetails:
        details = _run(["zipdetails", str(path)], text=True)
        assert "error" not in details.stderr.lower(), details.stderr[-2000:]
    return entries
