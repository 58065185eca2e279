"""The test tree itself: pytest imports test modules by basename (rootdir-relative, no packages), so two
test files of the same name in different folders break collection of the whole run, while either folder
alone still passes. Caught here, in the seconds-long unit run."""

from collections import Counter

from helpers.cluster import REPO_ROOT


def test_every_test_file_has_a_unique_basename():
    names = Counter(path.name for path in (REPO_ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
