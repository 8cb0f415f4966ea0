"""What request handlers share, built once per API process in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fitq.artifacts import ArtifactStore
from fitq.settings import Settings
from fitq.webhooks.urls import Resolver, system_resolver
from service.jobs.group_commit import GroupCommit
from service.jobs.submission_store import SubmissionStore
from service.queue import TaskQueue
from service.reads import StoreReads


@dataclass
class ServiceContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    queue: TaskQueue
    # The hot paths' store access: on PostgreSQL both run on ``pool`` (``service.pg``).
    reads: StoreReads
    submission_store: SubmissionStore
    pool: AsyncConnectionPool | None = None
    # Host names to addresses, for webhook URLs (a test resolves names its own way).
    resolve: Resolver = system_resolver
    # Submissions' writes and sends, batched under load (set once the context exists: it
    # sends through ``service.jobs.sending.send_new_jobs``, which takes the context).
    group_commit: GroupCommit = field(init=False)
