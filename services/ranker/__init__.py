"""Stage two: the MMoE re-ranker (shared experts, one softmax gate and one tower per task).

Python API (what the pipeline composes; other services talk to ``app`` over HTTP only):

- ``features.build_feature_store(transactions, customers, articles, cutoff) -> FeatureStore``:
  every statistic from rows strictly before ``cutoff``; ``FeatureStore.save/load``.
- ``features.compute_features(store, customer_ids, article_ids, scores) -> [n, F]``: the one
  place features are computed, for training, batch re-ranking, evaluation and ``/rank``.
- ``dataset.build_training_data(candidates, transactions, store, cutoff) -> TrainingData``:
  stage-one candidates of the week from ``cutoff``, labelled by it (purchase / online / revenue).
- ``train.train_ranker(transactions, customers, articles, train_candidates, train_cutoff,
  serve_cutoff, models_dir, version) -> {"mmoe": dir, "single_task": dir}``: fit, export to
  ``models/mmoe/<version>/`` (and the ablation to ``models/mmoe_single_task/<version>/``), publish.
- ``serving.LoadedRanker.load(dir)``: ``rank(customer, article_ids, scores, k)`` and
  ``rerank_frame(candidates, k)``; ``rerank.rerank_file(ranker, src, dst)`` for the batch file.
- ``app.create_app(settings)``: the FastAPI service (``POST /rank``, ``/livez``, ``/readyz``).
"""
