"""Numbers fixed by the S3 service and the ZIP format, each with its source."""

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

# S3 multipart upload rules (AWS S3 documentation, "Amazon S3 multipart upload limits").
MIN_PART_SIZE = 5 * MiB  # S3: every part but the last
MAX_PART_SIZE = 5 * GiB  # S3: any part, uploaded or copied
MAX_PARTS = 10_000  # S3: part numbers 1..10,000
MAX_OBJECT_SIZE = 5 * TiB  # S3: largest object a multipart upload may complete

# ZIP limits (APPNOTE 6.3.x, sections 4.3.7 to 4.3.16 and 4.4.1.4).
ZIP32_MAX_SIZE = 0xFFFFFFFF  # a 4-byte size or offset field at this value means "see zip64"
ZIP32_MAX_ENTRIES = 0xFFFF  # a 2-byte entry count at this value means "see zip64"
MAX_NAME_BYTES = 0xFFFF  # file name length is a 2-byte field
