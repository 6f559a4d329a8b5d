"""A synthetic H&M world: the three Kaggle CSVs plus product photos, deterministic per seed.

``generate_world(out_dir, scale="tiny", seed=0, images=True)`` writes ``articles.csv``,
``customers.csv``, ``transactions_train.csv`` (exact public format) and
``images/<first 3 digits>/<10-digit id>.jpg``. The generative story is in docs/synthetic.md.
"""

from pipeline.synthetic.scales import SCALES, get_scale
from pipeline.synthetic.world import generate_world

__all__ = ["SCALES", "generate_world", "get_scale"]
