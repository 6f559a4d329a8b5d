"""The pipeline's tests run the commands and methods on the worlds and models the service tests
build: the same fixtures, from tests/candidate and tests/search."""

from tests.candidate.conftest import tiny_cutoff, tiny_dataset, trained
from tests.search.conftest import index_dir, sample_articles, sample_world

__all__ = ["index_dir", "sample_articles", "sample_world", "tiny_cutoff", "tiny_dataset", "trained"]
