"""Prometheus metrics of the API (``GET /metrics``, admin keys only where auth is on): request
latency by route template; jobs and datasets by status, queue depth and live workers read
from the store at scrape time, so every API replica reports the same totals. Workers serve
their own (job durations, queue waits, epochs): ``worker.metrics``."""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fitq.settings import Settings
from fitq.statuses import DatasetStatus, JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from service.capacity import live_queues
from service.deps import Admin
from service.openapi import errors

router = APIRouter(tags=["metrics"])


class StoreCollector(Collector):
    """Jobs and datasets by status (every status present, 0 when none), jobs waiting per
    queue, and live workers per queue (from their heartbeat rows)."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with transaction(self.sessions) as session:
            jobs = repo.jobs_by_status(session)
            datasets = repo.datasets_by_status(session)
            waiting = repo.queued_by_queue(session)
            workers = live_queues(session, self.settings)
        depth = GaugeMetricFamily(
            "fitq_queue_depth", "Jobs queued and not yet claimed, per queue.", labels=["queue"]
        )
        for queue, count in sorted(waiting.items()):
            depth.add_metric([queue], count)
        yield depth
        live = GaugeMetricFamily(
            "fitq_workers", "Live worker processes per queue.", labels=["queue"]
        )
        for queue, count in sorted(workers.items()):
            live.add_metric([queue], count)
        yield live
        job_gauge = GaugeMetricFamily("fitq_jobs", "Jobs by status.", labels=["status"])
        for status in JobStatus:
            job_gauge.add_metric([status.value], jobs.get(status, 0))
        yield job_gauge
        dataset_gauge = GaugeMetricFamily("fitq_datasets", "Datasets by status.", labels=["status"])
        for dataset_status in DatasetStatus:
            dataset_gauge.add_metric([dataset_status.value], datasets.get(dataset_status, 0))
        yield dataset_gauge


class ApiMetrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "fitq_http_request_duration_seconds",
            "API request latency by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )

    def watch_store(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.registry.register(StoreCollector(sessions, settings))


class RequestMetrics:
    """ASGI middleware timing every HTTP request; unrouted paths share one label, so random
    URLs cannot grow the label set."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.latency.labels(route, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **errors(403),
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
    },
)
def metrics(request: Request, _: Admin) -> Response:
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
