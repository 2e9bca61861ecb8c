"""The test suite. Its shared checking modules get pytest's assertion messages too."""

import pytest

pytest.register_assert_rewrite("tests.readers", "tests.archive_checks")
