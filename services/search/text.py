"""Text search: TF-IDF over catalogue attributes (the engine fuses it with semantic search).

Each article becomes one document: name, product type, group, colour, department, section,
garment group and the free-text description. Two vectorisers see it: word uni/bi-grams
(exact catalogue words: "dress", "dark blue") and character 3-5-grams within words
(typos, plurals, compounds: "trouser" vs "trousers", "tshirt" vs "t-shirt"). Each part is
L2-normalised and weighted 1/sqrt(2), so a document vector has unit length and the score of
a query is a cosine in [0, 1].
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

DOCUMENT_COLUMNS: tuple[str, ...] = (
    "prod_name",
    "product_type_name",
    "product_group_name",
    "colour_group_name",
    "perceived_colour_master_name",
    "department_name",
    "index_name",
    "section_name",
    "garment_group_name",
    "detail_desc",
)


def article_documents(articles: pd.DataFrame) -> list[str]:
    """One text per article (columns missing from a data set are skipped)."""
    columns = [c for c in DOCUMENT_COLUMNS if c in articles.columns]
    parts = articles[columns].astype("string").fillna("")
    return [". ".join(p for p in row if p and p != "Unknown") for row in parts.itertuples(index=False, name=None)]


@dataclass
class TfidfIndex:
    word: TfidfVectorizer
    char: TfidfVectorizer
    matrix: sp.csr_matrix  # [n_articles, n_features], rows unit length

    def __post_init__(self) -> None:
        # Features x articles, row-major: a query touches only the rows of its own n-grams,
        # so scoring 105k articles costs what the query's few dozen n-grams cost.
        self._by_feature = self.matrix.T.tocsr()

    @classmethod
    def build(cls, documents: list[str]) -> TfidfIndex:
        word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True, dtype=np.float32)
        char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=1, lowercase=True, dtype=np.float32
        )
        matrix = cls._stack(word.fit_transform(documents), char.fit_transform(documents))
        return cls(word, char, matrix)

    @staticmethod
    def _stack(w: sp.spmatrix, c: sp.spmatrix) -> sp.csr_matrix:
        return sp.hstack([w * np.float32(np.sqrt(0.5)), c * np.float32(np.sqrt(0.5))], format="csr")

    def vectorise(self, query: str) -> sp.csr_matrix:
        return self._stack(self.word.transform([query]), self.char.transform([query]))

    def scores(self, query: str) -> np.ndarray:
        """Cosine similarity of ``query`` to every article: float32 [n_articles]."""
        return np.asarray((self.vectorise(query) @ self._by_feature).todense(), dtype=np.float32).ravel()

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            pickle.dump({"word": self.word, "char": self.char, "matrix": self.matrix}, fh, protocol=5)

    @classmethod
    def load(cls, path: Path) -> TfidfIndex:
        # Only ever loads the file our own builder wrote into the index folder.
        with open(path, "rb") as fh:
            state = pickle.load(fh)
        return cls(state["word"], state["char"], state["matrix"])
