"""The H&M data layer: typed loaders, validation and a parquet cache.

Contract (every other module relies on it):

- ``load_articles(path)``, ``load_customers(path)``, ``load_transactions(path, article_ids=None)``
  read the Kaggle CSV (or a parquet file) and return a DataFrame with the public columns.
- ``load_dataset(data_dir, cache_dir=None)`` returns a :class:`Dataset` of the three tables,
  using (and refreshing) a parquet cache in ``cache_dir`` when given.
- dtypes: ``article_id`` is a 10-character zero-padded string, ``customer_id`` a 64-hex
  string (pandas 3 default ``str`` dtype, arrow-backed: compact at 31.8M rows), ``t_dat`` is
  ``datetime64[ns]``, ``price`` float32, ``sales_channel_id`` int8, ``age`` float32
  (NaN = unknown), ``FN``/``Active`` float32 1.0/0.0 (missing means not subscribed);
  missing categorical text (``club_member_status``, ``fashion_news_frequency``,
  ``postal_code``, ``detail_desc``) is the empty string.
- Broken input raises :class:`DataValidationError` naming file, column and an example row.
"""

from shared.data.loaders import (
    Dataset,
    DataValidationError,
    load_articles,
    load_customers,
    load_dataset,
    load_transactions,
)

__all__ = [
    "Dataset",
    "DataValidationError",
    "load_articles",
    "load_customers",
    "load_dataset",
    "load_transactions",
]
