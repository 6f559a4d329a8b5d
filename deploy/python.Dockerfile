# syntax=docker/dockerfile:1
# Every Python image of the product from one file: one `venv` stage (the pyproject groups it
# installs are build arguments), one `runtime` stage (non-root user, the venv, shared/) and a
# target per image. Build from the repository root (docker-compose.yml passes the same):
#   docker build -f deploy/python.Dockerfile --target gateway -t hmrec-gateway .
#   docker build -f deploy/python.Dockerfile --target ranker -t hmrec-ranker .
#   docker build -f deploy/python.Dockerfile --target candidate --build-arg EXTRAS=tf -t hmrec-candidate .
#   docker build -f deploy/python.Dockerfile --target search --build-arg TORCH_EXTRAS=search -t hmrec-search .
#   docker build -f deploy/python.Dockerfile --target pipeline --build-arg TORCH_EXTRAS=search \
#     --build-arg EXTRAS="tf train" -t hmrec-pipeline .
#
# What each image installs from pyproject.toml: the serving core (`dependencies`) always; the
# gateway and the ranker nothing more (the MMoE serves in NumPy); the candidate service `tf`
# (services/candidate/model.py imports TensorFlow at module level when a two-tower is loaded;
# the query tower itself serves in NumPy); search `search` (torch CPU); the pipeline job
# `search` + `tf` + `train`. The core layer is the same in every image and the `search` layer
# the same in the search and pipeline images, so Docker builds each once.
#
# Stage order matters: without BuildKit (the compose test runs the classic builder) a target
# builds every stage above it, with that target's build arguments. So the targets above `search`
# only copy files and check nothing about the groups installed (a check that TensorFlow is there
# in `candidate` fails when `search` is built); `search` is last because it runs its ONNX export
# with torch. The build arguments each target needs are the commands above (compose passes them).

FROM python:3.11-slim AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml /tmp/pyproject.toml
# requirements.txt from pyproject: `dependencies` plus the optional groups named as arguments.
RUN printf '%s\n' "import sys, tomllib" \
      "p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']" \
      "print('\\n'.join(p['dependencies'] + [d for g in sys.argv[1:] for d in p['optional-dependencies'][g]]))" \
      > /usr/local/bin/requirements-from-pyproject \
 && python /usr/local/bin/requirements-from-pyproject > /tmp/core.txt \
 && pip install -r /tmp/core.txt
# TORCH_EXTRAS: the groups that need torch's CPU build (`search`), installed in their own layer
# with torch's index; EXTRAS: the other groups, on top. torch's CPU build: from the PyTorch CPU
# index (default), or where that is unreachable, with --build-arg EXTRA_INDEX_URL= and the wheel
# in wheels/ (HM_PIP_EXTRA_INDEX_URL= in compose). Images without TORCH_EXTRAS never use it.
ARG EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY wheels/ /wheels/
ARG TORCH_EXTRAS=
RUN if [ -n "$TORCH_EXTRAS" ]; then \
      python /usr/local/bin/requirements-from-pyproject $TORCH_EXTRAS > /tmp/requirements.txt \
      && pip install ${EXTRA_INDEX_URL:+--extra-index-url "$EXTRA_INDEX_URL"} --find-links /wheels -r /tmp/requirements.txt; \
    fi
ARG EXTRAS=
RUN if [ -n "$EXTRAS" ]; then \
      python /usr/local/bin/requirements-from-pyproject $TORCH_EXTRAS $EXTRAS > /tmp/requirements.txt \
      && if [ -n "$TORCH_EXTRAS" ]; then \
           pip install ${EXTRA_INDEX_URL:+--extra-index-url "$EXTRA_INDEX_URL"} --find-links /wheels -r /tmp/requirements.txt; \
         else pip install -r /tmp/requirements.txt; fi; \
    fi

# Not needed at serving (the runtime stage copies /opt/venv): test suites, C headers, Arrow
# Flight (nothing links it), pip and setuptools. The import proves the trim broke nothing.
RUN cd /opt/venv/lib/python3.11/site-packages \
 && rm -rf pandas/tests numpy/tests numpy/*/tests pyarrow/tests pyarrow/include pyarrow/src \
      pyarrow/libarrow_flight.so* pyarrow/_flight*.so \
 && python -m pip uninstall -y -q pip setuptools \
 && python -c "import numpy, pandas, pyarrow.parquet, pyarrow.csv, pyarrow.compute, pyarrow.dataset"

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HM_DATA_DIR=/data \
    HM_OUTPUT_DIR=/output
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
COPY --from=venv /opt/venv /opt/venv
WORKDIR /app
COPY shared ./shared
COPY services/__init__.py ./services/__init__.py

# The gateway (public API; the page itself is the frontend image).
FROM runtime AS gateway
ENV HM_GATEWAY_HOST=0.0.0.0 \
    HM_GATEWAY_PORT=8000
COPY services/gateway ./services/gateway
USER app
EXPOSE 8000
# Healthy = can answer /recommend (an unknown customer gets the popular fallback; a dependency
# that is down shows in the response's `degraded` and in /readyz, not as an unhealthy gateway).
HEALTHCHECK --interval=10s --timeout=4s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/recommend?k=1&customer_id=' + '0' * 64, timeout=3).status != 200)"]
CMD ["sh", "-c", "exec uvicorn services.gateway.app:create_app --factory --host \"$HM_GATEWAY_HOST\" --port \"$HM_GATEWAY_PORT\" --no-access-log"]

# The ranker service (the MMoE exported to NumPy).
FROM runtime AS ranker
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HM_RANKER_MODELS_DIR=/output/models
COPY services/ranker ./services/ranker
USER app
EXPOSE 8002
HEALTHCHECK --interval=10s --timeout=4s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8002/readyz', timeout=3).status != 200)"]
CMD ["uvicorn", "services.ranker.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8002", "--no-access-log"]

# The candidate service (two-tower query tower exported to NumPy + exact nearest-neighbour index).
FROM runtime AS candidate
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HM_CANDIDATE_MODELS_DIR=/output/models
COPY services/candidate ./services/candidate
USER app
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=4s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8001/readyz', timeout=3).status != 200)"]
CMD ["uvicorn", "services.candidate.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8001", "--no-access-log"]

# The one-shot offline job: synthetic data if /data is empty, then every model and index the
# services need into /output (`hmrec run --pipeline-only`).
FROM runtime AS pipeline
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2
RUN mkdir -p /data /output && chown app:app /data /output
COPY services ./services
COPY pipeline ./pipeline
USER app
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["python", "-c", "import os; os.stat('/app/pipeline/cli.py')"]
CMD ["python", "-m", "pipeline.cli", "run", "--pipeline-only", "--scale", "small"]

# The search service (TF-IDF + query encoders on ONNX Runtime, exported from torch).
FROM runtime AS search
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HM_SEARCH_MODELS_DIR=/output/models \
    HM_SEARCH_INDEX_DIR=/output/search \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
COPY services/search ./services/search
# Both encoders exported to ONNX once, here (services/search/onnx_models.py): a container starts
# without the export (seconds of torch), and the read-only files need no writable volume.
ENV HM_ONNX_CACHE_DIR=/opt/onnx-cache
RUN python -c "from services.search.image import ImageEmbedder; from services.search.semantic import SemanticEncoder; \
assert ImageEmbedder(backend='onnx').backend == SemanticEncoder(backend='onnx').backend == 'onnx'" \
 && ls /opt/onnx-cache
USER app
EXPOSE 8003
HEALTHCHECK --interval=10s --timeout=4s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8003/readyz', timeout=3).status != 200)"]
CMD ["uvicorn", "services.search.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8003", "--no-access-log"]
