# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target api    -t fitq-api .      # FastAPI, no TensorFlow
#   docker build --target worker -t fitq-worker .   # Celery + Keras on GPU TensorFlow
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FITQ_DATA_DIR=/data
RUN useradd --create-home --uid 10001 fitq && mkdir -p /data && chown fitq /data
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY fitq ./fitq

FROM base AS api
COPY service ./service
RUN pip install '.[service]'
USER fitq
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["uvicorn", "service.main:app", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
COPY worker ./worker
# The worker extra brings tensorflow-cpu; GPU hosts get the CUDA build in its place.
RUN pip install '.[worker]' && pip uninstall -y tensorflow-cpu \
 && pip install 'tensorflow[and-cuda]>=2.20,<2.22'
USER fitq
HEALTHCHECK --interval=30s --timeout=10s --retries=3 CMD python -m worker.healthcheck
# A CPU worker by default; compose runs `fitq worker --gpus device=0` on GPU hosts.
CMD ["fitq", "worker", "--gpus", "all"]
