"""What request handlers share, built once per API process in the lifespan."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from anyio import CapacityLimiter
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
    # A submission is Python work under the GIL between short store round trips: a few at a
    # time per core finish sooner than FastAPI's 40 threads contending (BENCHMARKS.md).
    submissions: CapacityLimiter = field(
        default_factory=lambda: CapacityLimiter(2 * (os.cpu_count() or 1))
    )
