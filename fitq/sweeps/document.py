"""Sweeps as the API shows them (SweepRead), from one place: ``sweep_document`` (the API's
answers and a sweep's webhook). The
trials, the best one and the counts are read from the trials' jobs each time (the jobs are
the truth; nothing about them is copied onto the sweep)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fitq.documents import as_utc
from fitq.spec.sweep import SweepCreate
from fitq.store.models import Sweep
from fitq.store.repository import TrialRow
from fitq.sweeps.trials import best_trial, shown_status, trial_counts, trial_limit, trials_of


def sweep_document(sweep: Sweep, rows: Sequence[TrialRow]) -> dict[str, Any]:
    spec = SweepCreate.model_validate(sweep.spec)
    trials = trials_of(spec, rows)
    best = best_trial(trials, spec.objective.direction)
    return {
        "id": sweep.id,
        "status": shown_status(sweep.status, trials).value,
        "created_at": as_utc(sweep.created_at),
        "finished_at": as_utc(sweep.finished_at),
        "spec": sweep.spec,
        "trials": [
            {
                "number": t.number,
                "job_id": t.job_id,
                "params": t.params,
                "state": t.state.value,
                "value": t.value,
                "epochs": t.epochs,
            }
            for t in trials
        ],
        "best": (
            {
                "number": best.number,
                "job_id": best.job_id,
                "params": best.params,
                "value": best.value,
            }
            if best is not None
            else None
        ),
        "counts": trial_counts(trials),
        "max_trials": trial_limit(spec),
        "cancel_requested": sweep.cancel_requested,
        "error": sweep.error_message,
    }
