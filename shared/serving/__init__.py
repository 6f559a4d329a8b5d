"""The serving skeleton every service is built on: the app factory with its slots and health
routes (``app``), Prometheus metrics (``prometheus``), the Redis connection (``redis_client``)
and bounded, decoded uploads (``uploads``)."""
