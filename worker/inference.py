"""Predictions from trained models: a worker on the ``inference`` queue keeps the models it
used last loaded (``safe_mode`` on every load), so a request pays no load after the first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from fitq.artifacts import ArtifactStore
from fitq.store import repository as repo
from fitq.store.db import transaction


class PredictError(Exception):
    """A request the model cannot answer; the message is what the user reads."""


class ModelMissing(PredictError):
    """The job's model file is gone from the artifact store."""


@dataclass
class ModelCache:
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    size: int = 8
    _models: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, job_id: str) -> Any:
        with self._lock:
            if job_id in self._models:
                self._models.move_to_end(job_id)
                return self._models[job_id]
        with transaction(self.sessions) as session:
            job = repo.get_job_by_id(session, job_id)
            key = job.model_key if job is not None else None
        if key is None:
            raise PredictError(f"job {job_id} has no trained model")
        import keras  # only processes that predict import Keras

        try:
            path = self.artifacts.local_path(key)
        except FileNotFoundError as exc:
            raise ModelMissing(str(exc)) from exc
        model = keras.models.load_model(path, safe_mode=True)
        with self._lock:
            self._models[job_id] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model

    def predict(self, job_id: str, x: list[Any] | dict[str, list[Any]]) -> dict[str, Any]:
        """``model.predict`` on rows (an object of them keyed by input name for a model of
        several inputs): ``{"y": rows}``, or ``{"y": {output name: rows}}`` for a model of
        several outputs."""
        model = self.model(job_id)
        names = [tensor.name for tensor in model.inputs]
        given = x if isinstance(x, dict) else dict(zip(names[:1], [x], strict=True))
        arrays = {name: np.asarray(rows, dtype=np.float32) for name, rows in given.items()}
        if set(arrays) != set(names):
            raise PredictError(f"expected inputs {names}, received {sorted(arrays)}")
        for tensor in model.inputs:
            array, expected = arrays[tensor.name], tuple(tensor.shape[1:])
            if array.ndim < 1 or tuple(array.shape[1:]) != expected:
                raise PredictError(
                    f"expected rows of shape {list(expected)}, received {list(array.shape[1:])}"
                )
        rows = len(next(iter(arrays.values())))
        feed: Any = arrays if len(arrays) > 1 else next(iter(arrays.values()))
        y = model.predict(feed, verbose=0, batch_size=min(rows, 1024) or 1)
        if isinstance(y, list | tuple | dict):
            outputs = y if isinstance(y, dict) else dict(zip(model.output_names, y, strict=True))
            return {
                "y": {name: np.asarray(v, dtype=np.float64).tolist() for name, v in outputs.items()}
            }
        return {"y": np.asarray(y, dtype=np.float64).tolist()}
