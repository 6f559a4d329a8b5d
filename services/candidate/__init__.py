"""Candidate generation (stage one): a two-tower retrieval model (TensorFlow Recommenders) and
the cheap sources beside it (stage_one.py).

Python API (what ``pipeline/`` calls; services never import each other):

``train_two_tower(dataset, cutoff, models_dir, version, epochs=None, seed=0, config=None,
publish_model=True, progress=True, stage_config=None, for_serving=True) -> Path``  (services.candidate.train)
    Train on purchases strictly before ``cutoff`` (a ``date``; ``None`` = all data, no
    validation), validate recall@100 on the week from ``cutoff`` each epoch with early stopping,
    export ``models_dir/two_tower/<version>/`` atomically, publish it unless told not to.
    ``for_serving=False`` (the ranker's training weeks) leaves out what only the service reads.

``generate_candidates(model_dir, dataset, cutoff, customer_ids=None, top_k=100, threshold=None,
filters=None, fallback_k=12, chunk_size=1024) -> DataFrame[customer_id, article_id, score, rank]``
(services.candidate.infer)
    Candidates for the week starting ``cutoff``, features strictly before it. ``model_dir`` is a
    version folder or an already loaded model (``load_two_tower``); a model trained past
    ``cutoff`` raises ``CutoffError``. ``filters`` is a ``FilterConfig`` (default: none).

``write_stage_one(model, dataset, out_path, ...)`` (services.candidate.batch) streams every
customer's stage one (all sources, tagged) to ``inference_results.parquet``;
``load_two_tower(path)`` (services.candidate.artifact) loads a version for repeated use.

Modules: settings (service settings, TrainConfig, FilterConfig), features (shared by training
and serving; every feature strictly before its day), model (towers + retrieval task), index
(exact NN), train, infer (two-tower top-k + filter), stage_one (every source, merged),
two_tower_source, batch (the batch file), artifact (save/load), serving (one customer), app (FastAPI).
"""

# Importing the package sets TF_USE_LEGACY_KERAS before any of its modules imports TensorFlow.
import shared.config  # noqa: F401
