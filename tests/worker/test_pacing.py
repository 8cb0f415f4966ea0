"""fitq's per-job execution choice (pure): eager for a few cheap steps, several steps per
traced call when steps are small, never more than an epoch or a short call's worth."""

from __future__ import annotations

from worker.pacing import MAX_STEPS_PER_EXECUTION, plan_pacing

SEED_PARAMS = 784 * 10 + 10 + 10 * 20 + 20 + 20 * 20 + 20 + 20 + 1


def test_the_seed_job_runs_an_epoch_per_traced_call() -> None:
    pacing = plan_pacing(1000, 32, 10, SEED_PARAMS, eval_rows=400)
    assert (pacing.run_eagerly, pacing.steps_per_execution) == (False, 32)


def test_a_one_epoch_job_on_32_rows_runs_eagerly() -> None:
    pacing = plan_pacing(32, 32, 1, SEED_PARAMS)
    assert pacing.run_eagerly and "eager is cheaper" in pacing.reason


def test_eager_only_where_allowed() -> None:
    assert not plan_pacing(32, 32, 1, SEED_PARAMS, eager_allowed=False).run_eagerly


def test_large_steps_get_one_per_call_and_calls_never_span_epochs() -> None:
    assert plan_pacing(100_000, 256, 5, 25_000_000).steps_per_execution == 1
    assert plan_pacing(100, 32, 50, 1_000).steps_per_execution == 4  # 4 steps an epoch
    assert plan_pacing(10**6, 32, 2, 1_000).steps_per_execution == MAX_STEPS_PER_EXECUTION
