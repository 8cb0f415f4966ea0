"""Admin routes and /metrics: admin keys only (403 for a user key), across tenants; and the
GPU-seconds-per-day quota, charged from the GPUs a job's worker held and for how long."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import make_engine, make_session_factory, transaction
from fitq.store.migrate import upgrade
from fitq.store.models import Job
from fitq.store.types import utcnow
from service.main import create_app
from tests.factories import tiny_job
from tests.service.test_auth import bearer, make_key, secured  # noqa: F401 (fixture)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_admin_routes_and_metrics_need_an_admin_key(secured) -> None:  # noqa: F811
    client, settings = secured
    user, admin = make_key(settings, "acme"), make_key(settings, "ops", role="admin")
    for path in ("/metrics", "/v1/admin/tenants"):
        assert client.get(path).status_code == 401
        refused = client.get(path, headers=bearer(user))
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "forbidden"
        assert "expected an admin key" in refused.json()["error"]["message"]
        assert client.get(path, headers=bearer(admin)).status_code == 200


def test_admin_sees_every_tenants_usage(secured) -> None:  # noqa: F811
    client, settings = secured
    acme, globex = make_key(settings, "acme"), make_key(settings, "globex")
    admin = make_key(settings, "ops", role="admin")
    for _ in range(2):
        assert client.post("/v1/jobs", json=tiny_job(), headers=bearer(acme)).status_code == 202
    client.post("/v1/jobs", json=tiny_job(), headers=bearer(globex))
    tenants = {
        t["tenant"]: t
        for t in client.get("/v1/admin/tenants", headers=bearer(admin)).json()["data"]
    }
    assert set(tenants) == {"acme", "globex", "ops"}
    assert tenants["acme"]["jobs"] == {"queued": 2}
    assert tenants["acme"]["active_jobs"] == 2
    assert tenants["globex"]["active_jobs"] == 1
    assert tenants["acme"]["dataset_bytes"] > 0  # the inline data became datasets
    assert tenants["ops"] == {
        "tenant": "ops",
        "jobs": {},
        "active_jobs": 0,
        "dataset_bytes": 0,
        "gpu_seconds_per_day": 0.0,
    }


def test_metrics_count_jobs_by_status_and_time_requests_by_route(secured) -> None:  # noqa: F811
    client, settings = secured
    admin = make_key(settings, "ops", role="admin")
    job_id = client.post("/v1/jobs", json=tiny_job(), headers=bearer(admin)).json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(admin))
    client.post("/v1/jobs", json=tiny_job(), headers=bearer(admin))
    client.get("/v1/jobs/job_unknown", headers=bearer(admin))
    client.get("/no/such/path")
    text = client.get("/metrics", headers=bearer(admin)).text
    jobs = samples(text, "fitq_jobs")
    assert jobs[(("status", "queued"),)] == 1
    assert jobs[(("status", "cancelled"),)] == 1
    assert jobs[(("status", "succeeded"),)] == 0
    assert samples(text, "fitq_queue_depth") == {(("queue", "cpu"),): 1}
    assert samples(text, "fitq_workers") == {}  # no heartbeat rows here
    counts = samples(text, "fitq_http_request_duration_seconds_count")
    assert counts[(("method", "POST"), ("route", "/v1/jobs"), ("status", "202"))] == 2
    assert counts[(("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "404"))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1


def charge(
    settings: Settings, tenant: str, gpus: int, hours_ago: float, hours: float | None
) -> None:
    """A job of ``tenant`` that held ``gpus`` GPUs from ``hours_ago`` for ``hours`` (None: still
    running)."""
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    started = utcnow() - timedelta(hours=hours_ago)
    finished = None if hours is None else started + timedelta(hours=hours)
    with transaction(sessions) as session:
        session.add(
            Job(
                id=f"job_{tenant}{gpus}{hours_ago}".replace(".", "")[:40],
                tenant_id=tenant,
                status="running" if finished is None else "succeeded",
                queue="train",
                spec={},
                epochs=1,
                gpus=gpus,
                started_at=started,
                finished_at=finished,
            )
        )


def test_gpu_seconds_count_only_gpu_time_inside_the_last_24_hours(embedded_settings) -> None:
    settings = embedded_settings
    upgrade(settings.resolved_database_url)
    charge(settings, "acme", gpus=2, hours_ago=25, hours=2)  # 1 h of it inside: 2 x 3600
    charge(settings, "acme", gpus=1, hours_ago=3, hours=1)  # 3600
    charge(settings, "acme", gpus=0, hours_ago=3, hours=1)  # a CPU job: free
    charge(settings, "acme", gpus=1, hours_ago=48, hours=1)  # outside the window
    charge(settings, "globex", gpus=4, hours_ago=1, hours=None)  # running: 4 x 3600 so far
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    since = utcnow() - timedelta(days=1)
    with transaction(sessions) as session:
        acme = repo.gpu_seconds_since(session, "acme", since)
        globex = repo.gpu_seconds_since(session, "globex", since)
    assert abs(acme - 3 * 3600) < 5
    assert abs(globex - 4 * 3600) < 5


def test_jobs_past_the_gpu_seconds_quota_are_429(embedded_settings) -> None:
    settings = embedded_settings.model_copy(update={"max_gpu_seconds_per_day": 3600.0})
    upgrade(settings.resolved_database_url)
    charge(settings, "default", gpus=1, hours_ago=2, hours=0.5)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/jobs", json=tiny_job()).status_code == 202  # 1,800 used
        usage = client.get("/v1/usage").json()["gpu_seconds_per_day"]
        assert usage["limit"] == 3600.0 and abs(usage["used"] - 1800) < 5
        charge(settings, "default", gpus=2, hours_ago=1, hours=0.25)  # +1,800: at the cap
        refused = client.post("/v1/jobs", json=tiny_job())
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "600"
        assert (
            "at most 3,600 GPU-seconds in 24 hours (FITQ_MAX_GPU_SECONDS_PER_DAY)"
            in (refused.json()["error"]["message"])
        )
