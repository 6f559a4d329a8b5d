"""The wire contract: the request/response models the services exchange over HTTP
(``schemas``), their fast encoders (``wire``) and stage one's per-source columns as both
stages read them (``candidate_sources``)."""
