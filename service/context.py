"""What request handlers share, built once per API process in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fitq.artifacts import ArtifactStore
from fitq.settings import Settings
from service.queue import TaskQueue
from service.reads import StoreReads


@dataclass
class ServiceContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    queue: TaskQueue
    reads: StoreReads
