"""A prefix that ends inside a name keeps that name's start in the archive."""

from s3zip_dagster.core.names import archive_name, relative_key


def test_prefix_without_trailing_slash_strips_only_its_folder():
    assert archive_name("p/a.txt", "p", True, "") == "p/a.txt"
    assert archive_name("exports/2026-01/a.csv", "exports/2026-", True, "") == "2026-01/a.csv"
    assert archive_name("exports/2026-01/a.csv", "exports/", True, "x/") == "x/2026-01/a.csv"
    assert archive_name("exports/a.csv", "exports/", False, "") == "exports/a.csv"


def test_globs_see_the_key_less_the_prefix_folder():
    assert relative_key("data/2026/a.csv", "data/20") == "2026/a.csv"
    assert relative_key("data/2026/a.csv", "") == "data/2026/a.csv"
