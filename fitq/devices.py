"""Which worker processes a host runs and which queue a job goes to. Plain data and pure
functions: the CLI, the API and the tests share them, and no GPU is needed to check them.

A GPU worker process owns a fixed group of devices for its whole life (``CUDA_VISIBLE_DEVICES``
is set before TensorFlow is imported) and runs one job at a time; a job needing k GPUs goes to
queue ``gpu<k>``, served by processes that own k GPUs each. CPU jobs go to ``cpu``."""

from __future__ import annotations

from dataclasses import dataclass, field

CPU_QUEUE = "cpu"


def gpu_queue(gpus: int) -> str:
    return f"gpu{gpus}"


def queue_for(gpus: int) -> str:
    """The training queue of a job that needs ``gpus`` GPUs (0: the CPU queue)."""
    if gpus < 0:
        raise ValueError(f"expected 0 or more GPUs, received {gpus}")
    return gpu_queue(gpus) if gpus else CPU_QUEUE


def gpus_of_queue(queue: str) -> int | None:
    """GPUs per job on a training queue; None for a queue that trains nothing."""
    if queue == CPU_QUEUE:
        return 0
    if queue.startswith("gpu") and queue[3:].isdigit() and int(queue[3:]) > 0:
        return int(queue[3:])
    return None


@dataclass(frozen=True)
class WorkerPlan:
    name: str
    queue: str
    devices: tuple[str, ...]  # GPU ids this process owns; () for a CPU worker
    env: dict[str, str] = field(default_factory=dict)


def parse_gpus(value: str, detected: int) -> list[str]:
    """``--gpus`` as Docker spells it: ``all`` (every detected GPU), ``none``, a count (the
    first N detected) or ``device=0,2`` (those ids, detected or not: a container may lack
    ``nvidia-smi``)."""
    text = value.strip().lower()
    if text == "all":
        return [str(i) for i in range(detected)]
    if text == "none":
        return []
    if text.isdigit():
        count = int(text)
        if count > detected:
            raise ValueError(f"expected at most the {detected} GPUs detected, received {count}")
        return [str(i) for i in range(count)]
    ids = [part.strip() for part in text.removeprefix("device=").split(",")]
    if (
        not text.startswith("device=")
        or any(not part.isdigit() for part in ids)
        or len(set(ids)) != len(ids)
    ):
        raise ValueError(
            f"expected all, none, a count or device=<distinct ids>, received {value!r}"
        )
    return ids


def plan_workers(
    gpu_ids: list[str], gpus_per_job: int = 1, cpu_workers: int = 1, prefix: str = "fitq"
) -> list[WorkerPlan]:
    """One process per group of ``gpus_per_job`` GPUs (ids left over that cannot make a whole
    group are not used); a host without GPUs runs ``cpu_workers`` CPU processes instead."""
    if gpus_per_job < 1:
        raise ValueError(f"expected --gpus-per-job of 1 or more, received {gpus_per_job}")
    if not gpu_ids:
        # An empty CUDA_VISIBLE_DEVICES hides any GPU: a CPU worker never grabs one.
        return [
            WorkerPlan(f"{prefix}-cpu{i}", CPU_QUEUE, (), {"CUDA_VISIBLE_DEVICES": ""})
            for i in range(cpu_workers)
        ]
    if len(gpu_ids) < gpus_per_job:
        raise ValueError(
            f"expected at least {gpus_per_job} GPUs for --gpus-per-job {gpus_per_job}, "
            f"received {len(gpu_ids)} ({','.join(gpu_ids)})"
        )
    groups = [
        tuple(gpu_ids[start : start + gpus_per_job])
        for start in range(0, len(gpu_ids) - gpus_per_job + 1, gpus_per_job)
    ]
    return [
        WorkerPlan(
            f"{prefix}-gpu{'-'.join(group)}",
            gpu_queue(gpus_per_job),
            group,
            {"CUDA_VISIBLE_DEVICES": ",".join(group)},
        )
        for group in groups
    ]
