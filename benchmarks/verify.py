"""The check every archive passes before its figures count.

The archive is downloaded to a temporary file; Python's zipfile must list exactly the
expected entry names, each STORED with the size and CRC-32 of the generated object, and
`testzip` must read every entry's bytes back to that CRC-32.
"""

import zipfile
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from s3zip_dagster.core.limits import MiB


class VerificationError(Exception):
    """The archive is not the one the data set calls for."""


def check_file(path: Path, expected: dict[str, tuple[int, int]]) -> int:
    """Check the ZIP file at `path`; return its entry count or raise VerificationError."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(names) != len(set(names)):
            raise VerificationError("the archive holds a name twice")
        missing = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        if missing or extra:
            raise VerificationError(f"names differ: {len(missing)} missing (first "
                                    f"{missing[:2]}), {len(extra)} extra ({extra[:2]})")
        for info in infos:
            size, crc = expected[info.filename]
            if info.compress_type != zipfile.ZIP_STORED:
                raise VerificationError(f"{info.filename}: method {info.compress_type}")
            if (info.file_size, info.compress_size, info.CRC) != (size, size, crc):
                raise VerificationError(
                    f"{info.filename}: size {info.file_size}/{info.compress_size}, CRC-32 "
                    f"{info.CRC:08x}; the source has {size} B, CRC-32 {crc:08x}")
        bad = archive.testzip()
        if bad is not None:
            raise VerificationError(f"{bad}: its bytes do not match its CRC-32")
        return len(infos)


def verify(client, bucket: str, key: str, expected: dict[str, tuple[int, int]],
           folder: Path) -> tuple[int, int]:
    """Download s3://bucket/key and check it; return (archive bytes, entries)."""
    path = Path(folder) / "archive-under-test.zip"
    config = TransferConfig(multipart_chunksize=64 * MiB, max_concurrency=8)
    try:
        client.download_file(bucket, key, str(path), Config=config)
        size = path.stat().st_size
        return size, check_file(path, expected)
    except zipfile.BadZipFile as error:
        raise VerificationError(f"not a readable ZIP: {error}") from error
    finally:
        path.unlink(missing_ok=True)
