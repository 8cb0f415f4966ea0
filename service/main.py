"""The FastAPI app. Standard start: ``fitq api`` (uvicorn with fitq's protocol).

The standalone API refuses to start on an un-migrated database (``fitq db upgrade`` first);
``fitq serve`` migrates its embedded database before starting it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from starlette.types import Scope

from fitq import __version__, logs
from fitq.artifacts import artifact_store
from fitq.settings import Settings, get_settings
from fitq.store.db import make_engine, make_session_factory
from fitq.store.migrate import require_current
from service.admin import router as admin_router
from service.context import ServiceContext
from service.dashboard import endpoints as dashboard
from service.datasets.endpoints import router as datasets_router
from service.errors import install_error_handlers
from service.health import router as health_router
from service.jobs.endpoints import router as jobs_router
from service.jobs.endpoints import validate_router
from service.jobs.group_commit import GroupCommit
from service.jobs.sending import send_new_jobs
from service.jobs.submission_store import submission_store
from service.metrics import ApiMetrics, RequestMetrics
from service.metrics import router as metrics_router
from service.openapi import install_openapi
from service.pg import pool_for
from service.queue import TaskQueue
from service.reads import store_reads
from service.request_limits import BodySizeLimit, JsonShapeLimit
from service.sweeper import SweeperThread
from service.sweeps.endpoints import router as sweeps_router
from service.usage import router as usage_router
from service.webhooks.endpoints import router as webhooks_router

log = logging.getLogger("fitq.api")


API_DESCRIPTION = (
    "Keras training as a service. POST a job (a Keras model as layers or model.to_json(), "
    "compile and fit settings, and data inline or by dataset id); poll GET /v1/jobs/{id} "
    "until it ends; read its history, test metrics and trained .keras model. Every error is "
    "the ErrorEnvelope, naming each field refused, what was expected and what was received."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()
        logs.configure(resolved.log_format)  # after uvicorn set its loggers up
        logs.redact_access_log()
        resolved.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(resolved.resolved_database_url)
        require_current(engine)
        pool = pool_for(engine)
        ctx = ServiceContext(
            settings=resolved,
            engine=engine,
            sessions=make_session_factory(engine),
            artifacts=artifact_store(resolved),
            queue=TaskQueue(resolved),
            reads=store_reads(engine, pool),
            submission_store=submission_store(engine, pool),
            pool=pool,
        )
        ctx.group_commit = GroupCommit(ctx.submission_store, partial(send_new_jobs, ctx))
        if pool is not None:
            await pool.open()
        app.state.context = ctx
        app.state.metrics.watch_store(ctx.sessions, resolved)
        sweeper = SweeperThread(ctx) if resolved.sweeper_enabled else None
        if sweeper:
            sweeper.start()
        log.info("fitq API ready (store %s)", engine.url.render_as_string(hide_password=True))
        if resolved.auth == "off":
            log.warning(
                "authentication is OFF: every request acts as tenant %r (FITQ_AUTH=on to "
                "require API keys)",
                resolved.default_tenant,
            )
        try:
            yield
        finally:
            if sweeper:
                sweeper.stop()
            await ctx.queue.aclose()
            if pool is not None:
                await pool.close()
            engine.dispose()

    # One schema per model for requests and responses: what a response holds is always a
    # valid request value (a loss as an object, where a request may also name it).
    app = FastAPI(
        title="fitq",
        version=__version__,
        lifespan=lifespan,
        separate_input_output_schemas=False,
        # Each operation named after its endpoint function (create_job, get_job): what a
        # generated client calls its methods.
        generate_unique_id_function=lambda route: route.name,
    )
    install_openapi(app, API_DESCRIPTION)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(jobs_router)
    app.include_router(validate_router)
    app.include_router(datasets_router)
    app.include_router(sweeps_router)
    app.include_router(webhooks_router)
    app.include_router(usage_router)
    app.include_router(admin_router)
    app.include_router(metrics_router)
    dashboard.mount(app)
    limits = settings or get_settings()

    def limit_for(scope: Scope) -> int | None:
        uploading = scope["method"] == "POST" and scope["path"].rstrip("/") == "/v1/datasets"
        return limits.max_upload_bytes if uploading else limits.max_request_bytes

    # Added last = outermost: the size limit bounds what the shape check buffers.
    app.add_middleware(
        JsonShapeLimit,
        max_depth=limits.max_json_depth,
        max_items=limits.max_json_items,
        max_containers=limits.max_json_containers,
    )
    app.add_middleware(BodySizeLimit, limit_for=limit_for, idle_seconds=limits.body_idle_seconds)
    app.state.metrics = ApiMetrics()
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)  # outermost: times it all
    return app


app = create_app()
