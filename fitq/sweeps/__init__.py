"""Sweeps: a job's hyperparameters searched by Optuna over trials that are ordinary jobs.

- ``trials``: a trial as its job row tells it (state, objective value, values reported per
  epoch), the best one, the counts. No Optuna: the API's documents and the SDK read these.
- ``study``: Optuna's study replayed from those trials, to draw the next trial's values and
  to ask the pruner about a running trial.
- ``advance``: a sweep moved on in the store: new trials up to ``parallelism``, the cancel
  passed to its trials, the sweep finished once its last trial ends."""
