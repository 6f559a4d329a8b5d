"""World sizes. ``kaggle`` matches the public data set row for row; ``sparse`` has the shape of
a customer-sampled extract of it (a few thousand customers' complete histories over a
sub-catalogue), what an analyst often has on a laptop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

FIRST_DAY = date(2018, 9, 20)
LAST_DAY = date(2020, 9, 22)
N_DAYS = (LAST_DAY - FIRST_DAY).days + 1  # 734


@dataclass(frozen=True)
class Scale:
    name: str
    n_articles: int
    n_customers: int
    n_transactions: int
    n_clusters: int  # customer taste clusters
    image_size: tuple[int, int]  # (width, height) of product photos


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", 600, 2_000, 30_000, 8, (64, 96)),
    "sparse": Scale("sparse", 12_000, 1_500, 30_000, 40, (96, 144)),
    "small": Scale("small", 12_000, 50_000, 1_000_000, 40, (96, 144)),
    "medium": Scale("medium", 10_554, 137_198, 3_178_832, 32, (128, 192)),
    "kaggle": Scale("kaggle", 105_542, 1_371_980, 31_788_324, 48, (128, 192)),
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}") from None
