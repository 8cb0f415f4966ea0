"""The Python SDK: a typed, synchronous client of the HTTP API on httpx.

    from fitq import Client
    client = Client("http://localhost:8000", api_key="fitq_…")    # or FITQ_URL / FITQ_API_KEY
    job = client.jobs.create(spec)                                # a dict or a JobCreate
    job = client.jobs.wait(job.id, timeout=600)
    print(job.result.test_loss, job.result.test_metrics)

Errors are exceptions carrying the server's error body (``FitqAPIError`` and one subclass per
error type). 429 and 503 answers and connection failures are retried with exponential backoff,
honouring ``Retry-After``; a job submission is retried only with an ``Idempotency-Key`` (one
is made per call unless you pass yours), so a retry never creates a second job."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from pydantic import BaseModel

from fitq.schemas import (
    DatasetList,
    DatasetRead,
    EventList,
    JobEventRead,
    JobList,
    JobRead,
    PredictResponse,
    SweepList,
    SweepRead,
    Usage,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryRead,
    WebhookList,
    WebhookRead,
)
from fitq.statuses import JobStatus

M = TypeVar("M", bound=BaseModel)
FINISHED = frozenset(status for status in JobStatus if status.finished)
RETRY_STATUSES = frozenset({429, 503})


class FitqAPIError(Exception):
    """An error answer: its HTTP status and the envelope's type, message and details."""

    def __init__(
        self, status_code: int, type: str, message: str, details: list[dict[str, Any]]
    ) -> None:
        super().__init__(f"{status_code} {type}: {message}")
        self.status_code = status_code
        self.type = type
        self.message = message
        self.details = details


class ValidationError(FitqAPIError):
    pass


class NotFound(FitqAPIError):
    pass


class Conflict(FitqAPIError):
    pass


class Unauthorized(FitqAPIError):
    pass


class Forbidden(FitqAPIError):
    pass


class QuotaExceeded(FitqAPIError):
    pass


class PayloadTooLarge(FitqAPIError):
    pass


class Unavailable(FitqAPIError):
    pass


class JobTimeout(TimeoutError):
    """``wait`` gave up before the job finished (the job itself goes on)."""


_ERRORS: dict[str, type[FitqAPIError]] = {
    "validation_error": ValidationError,
    "not_found": NotFound,
    "conflict": Conflict,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "quota_exceeded": QuotaExceeded,
    "rate_limited": QuotaExceeded,
    "payload_too_large": PayloadTooLarge,
    "unavailable": Unavailable,
    "timeout": Unavailable,
}


def error_from(response: httpx.Response) -> FitqAPIError:
    try:
        body = response.json()["error"]
        kind, message, details = body["type"], body["message"], body.get("details", [])
    except (ValueError, KeyError, TypeError):
        kind, message, details = "internal", response.text[:500], []
    return _ERRORS.get(kind, FitqAPIError)(response.status_code, kind, message, details)


class Client:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = url or os.environ.get("FITQ_URL", "http://127.0.0.1:8000")
        api_key = api_key or os.environ.get("FITQ_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )
        self.retries = retries
        self.backoff = backoff
        self.jobs = Jobs(self)
        self.datasets = Datasets(self)
        self.sweeps = Sweeps(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def usage(self) -> Usage:
        return self.call("GET", "/v1/usage", Usage)

    def request(
        self, method: str, path: str, *, retry: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One API call; retried on 429/503 and connection errors when ``retry``."""
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                if last:
                    raise
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(self._delay(attempt, response.headers.get("retry-after")))
                continue
            if response.is_error:
                raise error_from(response)
            return response
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        return model.model_validate(self.request(method, path, **kwargs).json())

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                pass
        return self.backoff * 2**attempt


def json_rows(x: Any) -> Any:
    """Arrays (NumPy, nested lists) as JSON lists of numbers; a dict of them keyed alike."""
    if isinstance(x, dict):
        return {name: json_rows(rows) for name, rows in x.items()}
    return np.asarray(x, dtype=np.float64).tolist()


class Jobs:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(
        self, spec: dict[str, Any] | BaseModel, idempotency_key: str | None = None
    ) -> JobRead:
        """Submit a job; safe to retry (an Idempotency-Key is sent, made up if not given)."""
        body = (
            spec.model_dump(mode="json", exclude_none=True) if isinstance(spec, BaseModel) else spec
        )
        key = idempotency_key or f"sdk-{uuid.uuid4()}"
        headers = {"Idempotency-Key": key}
        return self.client.call("POST", "/v1/jobs", JobRead, json=body, headers=headers)

    def get(self, job_id: str) -> JobRead:
        return self.client.call("GET", f"/v1/jobs/{job_id}", JobRead)

    def list(self, status: str | None = None, page_size: int = 100) -> Iterator[JobRead]:
        """Every job, newest first, across pages."""
        yield from _pages(self.client, "/v1/jobs", JobList, status=status, limit=page_size)

    def cancel(self, job_id: str) -> JobRead:
        return self.client.call("POST", f"/v1/jobs/{job_id}/cancel", JobRead)

    def delete(self, job_id: str) -> None:
        self.client.request("DELETE", f"/v1/jobs/{job_id}")

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        poll: float = 0.5,
        on_update: Callable[[JobRead], None] | None = None,
    ) -> JobRead:
        """Poll until the job is finished; ``on_update`` sees every view (a progress bar)."""
        return _until(
            lambda: self.get(job_id),
            lambda job: job.status in FINISHED,
            timeout,
            poll,
            f"job {job_id}",
            on_update,
        )

    def events(self, job_id: str, after: int = 0) -> Iterator[JobEventRead]:
        """The job's events after ``after``, in order, across pages."""
        while True:
            page = self.client.call(
                "GET",
                f"/v1/jobs/{job_id}/events",
                EventList,
                params={"after": after, "limit": 1000},
            )
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = page.data[-1].seq

    def download_model(self, job_id: str, path: str | Path) -> Path:
        """The trained ``.keras`` file, streamed to ``path``."""
        return self._download(f"/v1/jobs/{job_id}/model", Path(path))

    def download_tensorboard(self, job_id: str, path: str | Path) -> Path:
        """The TensorBoard logs (a .tar.gz) of a job with the TensorBoard callback."""
        return self._download(f"/v1/jobs/{job_id}/tensorboard", Path(path))

    def _download(self, url: str, target: Path) -> Path:
        with self.client.http.stream("GET", url) as response:
            if response.is_error:
                response.read()
                raise error_from(response)
            with open(target, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        return target

    def predict(self, job_id: str, x: Any) -> PredictResponse:
        """Rows (arrays, lists), or a dict of them keyed by input name for a model of several
        inputs; ``y`` is keyed by output name for a model of several outputs."""
        return self.client.call(
            "POST", f"/v1/jobs/{job_id}/predict", PredictResponse, json={"x": json_rows(x)}
        )


class Datasets:
    def __init__(self, client: Client) -> None:
        self.client = client

    def upload(
        self,
        source: str | Path | tuple[Any, Any] | Any,
        *,
        target: str | list[str] | None = None,
        features: list[str] | None = None,
        name: str | None = None,
    ) -> DatasetRead:
        """Upload a file (``.csv``, ``.jsonl``, ``.npz``), a pair of arrays ``(x, y)`` (sent as
        ``.npz``) or a pandas DataFrame (sent as CSV; ``target`` names its column). Answers the
        dataset as stored (``processing``); ``wait`` until it is ``ready``."""
        form: dict[str, str] = {}
        if target is not None:
            form["target"] = target if isinstance(target, str) else ",".join(target)
        if features is not None:
            form["features"] = ",".join(features)
        if isinstance(source, (str, Path)):
            path = Path(source)
            with open(path, "rb") as handle:
                files = {"file": (name or path.name, handle)}
                return self._send(files, form)
        if isinstance(source, tuple):
            buffer = io.BytesIO()
            np.savez(buffer, x=np.asarray(source[0]), y=np.asarray(source[1]))
            return self._send({"file": (name or "arrays.npz", buffer.getvalue())}, form)
        if hasattr(source, "to_csv"):
            text = source.to_csv(index=False).encode()
            return self._send({"file": (name or "frame.csv", text)}, form)
        raise TypeError(
            "expected a file path, an (x, y) pair of arrays or a pandas DataFrame, "
            f"received {type(source).__name__}"
        )

    def _send(self, files: dict[str, Any], form: dict[str, str]) -> DatasetRead:
        # Not retried: a second upload would store a second dataset.
        return self.client.call(
            "POST", "/v1/datasets", DatasetRead, files=files, data=form, retry=False
        )

    def get(self, dataset_id: str) -> DatasetRead:
        return self.client.call("GET", f"/v1/datasets/{dataset_id}", DatasetRead)

    def list(self, status: str | None = None, page_size: int = 100) -> Iterator[DatasetRead]:
        yield from _pages(self.client, "/v1/datasets", DatasetList, status=status, limit=page_size)

    def delete(self, dataset_id: str) -> None:
        self.client.request("DELETE", f"/v1/datasets/{dataset_id}")

    def wait(
        self, dataset_id: str, timeout: float | None = None, poll: float = 0.25
    ) -> DatasetRead:
        return _until(
            lambda: self.get(dataset_id),
            lambda dataset: dataset.status != "processing",
            timeout,
            poll,
            f"dataset {dataset_id}",
        )


class Sweeps:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, spec: dict[str, Any] | BaseModel) -> SweepRead:
        """Start a sweep: ``{"job", "space", "objective", "sampler", "pruner", "max_trials",
        "parallelism", "seed"}``. Not retried once sent (a retry could start a second)."""
        body = (
            spec.model_dump(mode="json", exclude_none=True) if isinstance(spec, BaseModel) else spec
        )
        response = self.client.request("POST", "/v1/sweeps", retry=False, json=body)
        return SweepRead.model_validate(response.json())

    def get(self, sweep_id: str) -> SweepRead:
        return self.client.call("GET", f"/v1/sweeps/{sweep_id}", SweepRead)

    def list(self, status: str | None = None, page_size: int = 20) -> Iterator[SweepRead]:
        """Every sweep, newest first, across pages."""
        yield from _pages(self.client, "/v1/sweeps", SweepList, status=status, limit=page_size)

    def cancel(self, sweep_id: str) -> SweepRead:
        """No new trial starts; queued and running trials stop."""
        return self.client.call("POST", f"/v1/sweeps/{sweep_id}/cancel", SweepRead)

    def delete(self, sweep_id: str) -> None:
        """A finished sweep, with its trials' jobs."""
        self.client.request("DELETE", f"/v1/sweeps/{sweep_id}")

    def wait(
        self,
        sweep_id: str,
        timeout: float | None = None,
        poll: float = 1.0,
        on_update: Callable[[SweepRead], None] | None = None,
    ) -> SweepRead:
        """Poll until the sweep is finished; ``on_update`` sees every view (a progress bar)."""
        return _until(
            lambda: self.get(sweep_id),
            lambda sweep: sweep.status.finished,
            timeout,
            poll,
            f"sweep {sweep_id}",
            on_update,
        )


class Webhooks:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, url: str, events: list[str], description: str | None = None) -> WebhookCreated:
        """An endpoint for ``events`` (job.succeeded, job.failed, job.cancelled,
        sweep.completed). Keep the answer's ``secret``: it is shown this once, and
        ``fitq.verify_webhook`` needs it. Not retried once sent (a retry could add a second)."""
        body = _params(url=url, events=events, description=description)
        response = self.client.request("POST", "/v1/webhooks", retry=False, json=body)
        return WebhookCreated.model_validate(response.json())

    def get(self, webhook_id: str) -> WebhookRead:
        return self.client.call("GET", f"/v1/webhooks/{webhook_id}", WebhookRead)

    def list(self, page_size: int = 20) -> Iterator[WebhookRead]:
        """Every endpoint, newest first, across pages."""
        yield from _pages(self.client, "/v1/webhooks", WebhookList, limit=page_size)

    def delete(self, webhook_id: str) -> None:
        """The endpoint and its deliveries: nothing more is sent to it."""
        self.client.request("DELETE", f"/v1/webhooks/{webhook_id}")

    def test(self, webhook_id: str) -> WebhookDeliveryRead:
        """Send a ``webhook.test`` event; its attempts show in ``deliveries``."""
        path = f"/v1/webhooks/{webhook_id}/test"
        return self.client.call("POST", path, WebhookDeliveryRead, retry=False)

    def deliveries(self, webhook_id: str, page_size: int = 20) -> Iterator[WebhookDeliveryRead]:
        """The endpoint's deliveries, newest first, each with its attempts."""
        path = f"/v1/webhooks/{webhook_id}/deliveries"
        yield from _pages(self.client, path, WebhookDeliveryList, limit=page_size)


def _params(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _pages(client: Client, path: str, model: type[Any], **params: Any) -> Iterator[Any]:
    """Every item of a paged list, following ``next_after``."""
    after: str | None = None
    while True:
        page = client.call("GET", path, model, params=_params(**params, after=after))
        yield from page.data
        if not page.has_more or page.next_after is None:
            return
        after = page.next_after


def _until(
    fetch: Callable[[], M],
    done: Callable[[M], bool],
    timeout: float | None,
    poll: float,
    what: str,
    on_update: Callable[[M], None] | None = None,
) -> M:
    """Fetch every ``poll`` seconds until ``done``; ``JobTimeout`` past ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        value = fetch()
        if on_update is not None:
            on_update(value)
        if done(value):
            return value
        if deadline is not None and time.monotonic() >= deadline:
            raise JobTimeout(f"{what} not finished after {timeout} s")
        time.sleep(poll)
