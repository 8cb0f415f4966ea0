# The images, from one file (no BuildKit needed; docker compose builds them the same way):
#   docker build --target api        -t fitq-api .          # FastAPI and migrations, no TensorFlow
#   docker build --target worker     -t fitq-worker .       # Celery + Keras on CUDA TensorFlow
#   docker build --target worker-cpu -t fitq-worker-cpu .   # the same on tensorflow-cpu
# Each installs one extra alone, non-editable, and runs as the unprivileged user fitq.
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 FITQ_DATA_DIR=/data TF_CPP_MIN_LOG_LEVEL=2
RUN useradd --create-home --uid 10001 fitq && mkdir -p /data && chown fitq /data
WORKDIR /src
# Dependencies first, from pyproject.toml alone: a layer that a change to the code keeps.
COPY pyproject.toml docker/requirements.py ./

FROM base AS api
RUN python requirements.py service > requirements.txt && pip install -r requirements.txt
COPY README.md ./
COPY fitq ./fitq
COPY service ./service
RUN pip install --no-deps . && pip check && cd / && rm -rf /src
WORKDIR /data
USER fitq
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["fitq", "api", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker-cpu
RUN python requirements.py worker > requirements.txt && pip install -r requirements.txt
COPY README.md ./
COPY fitq ./fitq
COPY worker ./worker
RUN pip install --no-deps . && pip check && cd / && rm -rf /src
WORKDIR /data
USER fitq
# Healthy while this container's worker has a fresh heartbeat row in the store.
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
  CMD python -m worker.healthcheck
CMD ["fitq", "worker"]

FROM base AS worker
# The worker extra's tensorflow-cpu, replaced by the CUDA build (one `tensorflow` package:
# the CPU one goes first, or removing it would delete the CUDA one's files).
RUN python requirements.py worker > requirements.txt && pip install -r requirements.txt \
 && pip uninstall -y tensorflow-cpu && pip install 'tensorflow[and-cuda]>=2.20,<2.22'
COPY README.md ./
COPY fitq ./fitq
COPY worker ./worker
RUN pip install --no-deps . && pip check && cd / && rm -rf /src
WORKDIR /data
USER fitq
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
  CMD python -m worker.healthcheck
# Compose runs `fitq worker --gpus device=0` (one GPU a container); alone, every GPU.
CMD ["fitq", "worker", "--gpus", "all"]
