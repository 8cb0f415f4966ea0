"""Checkpoints a job resumes from bit for bit.

A checkpoint is taken only at an epoch's end. It holds the model as Keras saves it: weights,
optimizer state with its step count, and compile settings. It also holds what Keras leaves
out and a resumed run needs to draw the same numbers:
- the state of each random layer's seed generator (Dropout's masks);
- Python's and NumPy's global random states (Keras shuffles the batches of a dataset
  object with Python's ``random``);
- EarlyStopping's counters and best weights, ReduceLROnPlateau's counters,
  ModelCheckpoint's best value and the file it wrote;
- the epoch it was taken after.

That extra state is a member of the same ``.keras`` zip, so the checkpoint is one artifact,
written and renamed in one piece: its epoch is read from it, never from a row that a crash
between the two writes would leave behind. Keras's loader ignores the extra members.

(The shuffle order of in-memory data needs nothing saved: Keras draws each epoch's
permutation from the seeded graph, the same for epoch k whatever ran before it.)"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

# The cadence: a crash loses at most about max(one epoch, LOSS_SHARE of the time trained),
# while saving costs at most COST_SHARE of it (a short job never pays for a checkpoint).
LOSS_SHARE = 0.05
COST_SHARE = 0.03
STATE_MEMBER = "fitq-checkpoint.json"
BEST_WEIGHTS_MEMBER = "fitq-early-stopping-best-weights.npz"
SAVED_MODEL_MEMBER = "fitq-model-checkpoint.keras"
# EarlyStopping's and ReduceLROnPlateau's progress; on_train_begin resets it, so a resumed
# run puts it back after.
EARLY_STOPPING_FIELDS = ("wait", "stopped_epoch", "best", "best_epoch")
REDUCE_LR_FIELDS = ("wait", "best", "cooldown_counter")


def checkpoint_due(
    *,
    trained: float,
    since_last: float,
    saving: float,
    next_save: float,
    longest_interval: float,
) -> bool:
    """At an epoch's end: save now? ``trained`` seconds of training so far (this attempt),
    ``since_last`` since the last checkpoint (or the start), ``saving`` seconds spent saving
    so far, ``next_save`` what the next save should take. Due when the work a crash would
    lose has grown past ``LOSS_SHARE`` of the time trained and the save keeps the total cost
    within ``COST_SHARE`` of it; always due after ``longest_interval``."""
    if since_last >= longest_interval:
        return True
    return since_last >= LOSS_SHARE * trained and saving + next_save <= COST_SHARE * trained


@dataclass(frozen=True)
class CheckpointState:
    epoch: int  # epochs the checkpoint holds
    seeds: list[list[int]]  # each seed generator's state, in model variable order
    python_random: list[Any]  # random.getstate()
    numpy_random: list[Any]  # np.random.get_state()
    early_stopping: dict[str, Any] | None = None
    best_weights: list[np.ndarray] | None = None
    reduce_lr: dict[str, Any] | None = None
    model_checkpoint: dict[str, Any] | None = None  # ModelCheckpoint's best, saved epoch
    saved_model: bytes | None = None  # the file ModelCheckpoint wrote, as it was


def _seed_variables(model: keras.Model) -> list[Any]:
    # Every keras.random.SeedGenerator keeps its state in a variable of this name.
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def save(
    model: keras.Model,
    path: Path,
    epoch: int,
    early_stopping: keras.callbacks.EarlyStopping | None = None,
    reduce_lr: keras.callbacks.ReduceLROnPlateau | None = None,
    model_checkpoint: ResumableModelCheckpoint | None = None,
) -> None:
    """``model.save(path)`` plus the state Keras leaves out."""
    model.save(path)
    saved = Path(model_checkpoint.filepath) if model_checkpoint is not None else None
    state: dict[str, Any] = {
        "epoch": epoch,
        "seeds": [np.asarray(v).tolist() for v in _seed_variables(model)],
        "python_random": _plain_tree(random.getstate()),
        "numpy_random": _plain_tree(np.random.get_state()),
        "early_stopping": None,
        "reduce_lr": _fields(reduce_lr, REDUCE_LR_FIELDS) if reduce_lr is not None else None,
        "model_checkpoint": model_checkpoint.state() if model_checkpoint is not None else None,
    }
    best: list[np.ndarray] | None = None
    if early_stopping is not None:
        state["early_stopping"] = _fields(early_stopping, EARLY_STOPPING_FIELDS)
        best = early_stopping.best_weights
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(STATE_MEMBER, json.dumps(state))
        if best is not None:
            buffer = io.BytesIO()
            np.savez(buffer, *best)
            archive.writestr(BEST_WEIGHTS_MEMBER, buffer.getvalue())
        if saved is not None and saved.exists():
            archive.writestr(SAVED_MODEL_MEMBER, saved.read_bytes())


def read_state(path: Path) -> CheckpointState | None:
    """The checkpoint's own state; None for a file without it (an older fitq's, taken
    mid-epoch: not one to resume from exactly)."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if STATE_MEMBER not in names:
            return None
        state = json.loads(archive.read(STATE_MEMBER))
        best = None
        if BEST_WEIGHTS_MEMBER in names:
            with np.load(io.BytesIO(archive.read(BEST_WEIGHTS_MEMBER))) as arrays:
                best = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        saved = archive.read(SAVED_MODEL_MEMBER) if SAVED_MODEL_MEMBER in names else None
    return CheckpointState(
        epoch=int(state["epoch"]),
        seeds=state["seeds"],
        python_random=state["python_random"],
        numpy_random=state["numpy_random"],
        early_stopping=state["early_stopping"],
        best_weights=best,
        reduce_lr=state.get("reduce_lr"),
        model_checkpoint=state.get("model_checkpoint"),
        saved_model=saved,
    )


def restore_random_state(model: keras.Model, state: CheckpointState) -> None:
    """The seed generators' and the global random states as the checkpoint saw them; call
    it last before ``fit``, after whatever else draws from them (loading the model does)."""
    version, internal, gauss = state.python_random
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state.numpy_random
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    variables = _seed_variables(model)
    if len(variables) != len(state.seeds):
        raise ValueError(
            f"expected {len(variables)} seed generator states, the checkpoint has "
            f"{len(state.seeds)}"
        )
    for variable, value in zip(variables, state.seeds, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping, which a resumed run starts where the checkpoint left it."""

    def __init__(self, resume: CheckpointState | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resume = resume

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self._resume is None or self._resume.early_stopping is None:
            return
        for name, value in self._resume.early_stopping.items():
            setattr(self, name, value)
        self.best_weights = self._resume.best_weights


class ResumableModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's ModelCheckpoint writing ``filepath`` as the job's model, saved with the
    user's compile settings (``saving``); a resumed run starts with the checkpoint's best
    value and its file. ``saved_epoch``: the epoch the file holds."""

    def __init__(
        self,
        resume: CheckpointState | None,
        saving: Callable[[keras.Model], AbstractContextManager[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._resume = resume
        self._saving = saving
        self.saved_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        state = self._resume.model_checkpoint if self._resume is not None else None
        if state is None:
            return
        self.best, self.saved_epoch = state["best"], state["saved_epoch"]
        if self._resume is not None and self._resume.saved_model is not None:
            Path(self.filepath).write_bytes(self._resume.saved_model)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        before = _file_state(Path(self.filepath))
        with self._saving(self.model):
            super().on_epoch_end(epoch, logs)
        if _file_state(Path(self.filepath)) != before:
            self.saved_epoch = epoch + 1

    def state(self) -> dict[str, Any]:
        return {"best": _plain(self.best), "saved_epoch": self.saved_epoch}


def _file_state(path: Path) -> tuple[int, int] | None:
    if not path.exists():
        return None
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras's ReduceLROnPlateau, which a resumed run starts where the checkpoint left it
    (the learning rate itself is the optimizer's, saved with the model)."""

    def __init__(self, resume: CheckpointState | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resume = resume

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self._resume is None or self._resume.reduce_lr is None:
            return
        for name, value in self._resume.reduce_lr.items():
            setattr(self, name, value)


def _fields(callback: keras.callbacks.Callback, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(getattr(callback, name)) for name in names}


def _plain_tree(value: Any) -> Any:
    """Tuples and arrays as lists, numpy scalars as Python numbers: JSON."""
    if isinstance(value, tuple | list):
        return [_plain_tree(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return _plain(value)


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python numbers (``best`` starts as ±inf, which Python's
    json writes and reads back as Infinity)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
