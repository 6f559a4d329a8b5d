"""The served search index: a folder of files whose manifest names its version."""

from __future__ import annotations

from services.search.engine import SearchIndex
from services.search.index import read_manifest
from services.search.settings import SearchSettings
from shared.serving.app import ReloadingSlot, Wanted


class IndexSlot(ReloadingSlot[SearchIndex]):
    """``shared.serving.app``'s reload core over ``index_dir``: a new manifest version is loaded
    beside the served index (reusing its text encoder and photo embedder, which do not change
    between index builds) and swapped in; a failed load keeps the old one serving."""

    def __init__(self, settings: SearchSettings) -> None:
        super().__init__("search_index")
        self.settings = settings

    def wanted(self) -> Wanted:
        version = str(read_manifest(self.settings.index_dir)["version"])
        return Wanted(version, self.settings.index_dir)

    def load(self, wanted: Wanted) -> SearchIndex:
        old = self.current
        return SearchIndex.load(
            wanted.folder, self.settings, encoder=old.encoder if old else None, embedder=old.embedder if old else None
        )
