"""Device assignment and routing, checked on a CPU host: the processes `fitq worker` plans
for a number of GPUs, the environment each gets, and the queue each job goes to."""

from __future__ import annotations

import pytest

from fitq.devices import CPU_QUEUE, gpus_of_queue, parse_gpus, plan_workers, queue_for


@pytest.mark.parametrize(
    ("value", "detected", "ids"),
    [
        ("all", 4, ["0", "1", "2", "3"]),
        ("none", 4, []),
        ("2", 4, ["0", "1"]),
        ("device=1,3", 4, ["1", "3"]),
        ("device=0", 0, ["0"]),
        ("0", 4, []),
        ("all", 0, []),
    ],
)
def test_gpus_option(value: str, detected: int, ids: list[str]) -> None:
    assert parse_gpus(value, detected) == ids


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5", "at most the 4 GPUs detected, received 5"),
        ("device=0,0", "device=<distinct ids>"),
        ("0,1", "device=<distinct ids>"),
    ],
)
def test_bad_gpus_option(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_gpus(value, 4)


def test_one_process_per_gpu_each_pinned_to_its_device() -> None:
    plans = plan_workers(["0", "1", "2", "3"], gpus_per_job=1)
    assert [(p.queue, p.env["CUDA_VISIBLE_DEVICES"]) for p in plans] == [
        ("gpu1", "0"),
        ("gpu1", "1"),
        ("gpu1", "2"),
        ("gpu1", "3"),
    ]
    assert len({p.name for p in plans}) == 4


def test_groups_of_k_for_k_gpu_jobs_leave_a_partial_group_unused() -> None:
    plans = plan_workers(["0", "1", "2", "3", "4"], gpus_per_job=2)
    assert [(p.queue, p.devices) for p in plans] == [("gpu2", ("0", "1")), ("gpu2", ("2", "3"))]


def test_a_cpu_host_runs_cpu_workers_that_see_no_gpu() -> None:
    plans = plan_workers([], cpu_workers=2)
    assert [p.queue for p in plans] == [CPU_QUEUE, CPU_QUEUE]
    assert all(p.env == {"CUDA_VISIBLE_DEVICES": ""} for p in plans)


def test_too_few_gpus_for_the_group_size() -> None:
    with pytest.raises(ValueError, match="at least 4 GPUs for --gpus-per-job 4, received 2"):
        plan_workers(["0", "1"], gpus_per_job=4)


@pytest.mark.parametrize(("gpus", "queue"), [(0, "cpu"), (1, "gpu1"), (8, "gpu8")])
def test_queue_for_a_job_and_back(gpus: int, queue: str) -> None:
    assert queue_for(gpus) == queue
    assert gpus_of_queue(queue) == gpus


def test_queues_that_train_nothing() -> None:
    assert gpus_of_queue("datasets") is None
    assert gpus_of_queue("gpu0") is None
    assert gpus_of_queue("gpux") is None


def test_recycling_settings_reach_celery() -> None:
    from fitq.queues import celery_config
    from fitq.settings import Settings

    default = celery_config(Settings())
    assert default["worker_max_tasks_per_child"] is None
    assert default["worker_max_memory_per_child"] is None
    recycled = celery_config(Settings(worker_max_jobs=20, worker_max_memory_mb=8_000))
    assert recycled["worker_max_tasks_per_child"] == 20
    assert recycled["worker_max_memory_per_child"] == 8_000 * 1024  # Celery counts KiB
