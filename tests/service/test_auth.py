"""API keys and tenant isolation: no key, a bad key or a revoked key is 401; another tenant's
ids answer 404 on every endpoint, as unknown ids do."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fitq import keys
from fitq.cli import serve_auth
from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import make_engine, make_session_factory, transaction
from fitq.store.migrate import upgrade
from fitq.store.models import ApiKey
from service.main import create_app
from tests.factories import tiny_job
from tests.processes import REPO_ROOT, child_env
from worker.ingest import DatasetIngestor
from worker.runner import JobRunner


def make_key(settings: Settings, tenant: str, role: str = "user") -> str:
    new = keys.generate()
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(sessions) as session:
        repo.add_api_key(
            session,
            ApiKey(prefix=new.prefix, tenant_id=tenant, role=role, secret_sha256=new.secret_sha256),
        )
    return new.key


@pytest.fixture
def secured(embedded_settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    settings = embedded_settings.model_copy(update={"auth": "on"})
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        yield client, settings


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_requests_without_a_valid_key_are_401(secured) -> None:
    client, settings = secured
    key = make_key(settings, "acme")
    assert client.get("/healthz").status_code == 200  # health stays open
    for headers, fragment in [
        ({}, "received none"),
        ({"Authorization": "Basic abc"}, "malformed"),
        (bearer("fitq_nope"), "malformed"),
        (bearer(keys.generate().key), "unknown or revoked"),
        (bearer(key[:-1] + ("A" if key[-1] != "A" else "B")), "unknown or revoked"),
    ]:
        response = client.get("/v1/jobs", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["type"] == "unauthorized"
        assert fragment in response.json()["error"]["message"]
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(sessions) as session:
        assert repo.revoke_api_key(session, keys.parse(key)[0])
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 401


def test_another_tenant_sees_nothing_of_ours(secured) -> None:
    client, settings = secured
    a, b = bearer(make_key(settings, "tenant-a")), bearer(make_key(settings, "tenant-b"))
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    from fitq.artifacts import artifact_store_from_root

    artifacts = artifact_store_from_root(settings.resolved_artifacts_dir)
    job_id = client.post("/v1/jobs", json=tiny_job(epochs=1), headers=a).json()["id"]
    JobRunner(sessions, artifacts, settings, "test").run(job_id)
    upload = client.post(
        "/v1/datasets", files={"file": ("d.csv", b"a,y\n1,2\n")}, data={"target": "y"}, headers=a
    ).json()
    DatasetIngestor(sessions, artifacts, settings).run(upload["id"])
    dataset_id = upload["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=a).json()["status"] == "succeeded"

    walk = [
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", f"/v1/jobs/{job_id}/model", None),
        ("GET", f"/v1/jobs/{job_id}/events", None),
        ("POST", f"/v1/jobs/{job_id}/cancel", None),
        ("POST", f"/v1/jobs/{job_id}/predict", {"x": [[0.0] * 4]}),
        ("DELETE", f"/v1/jobs/{job_id}", None),
        ("GET", f"/v1/datasets/{dataset_id}", None),
        ("DELETE", f"/v1/datasets/{dataset_id}", None),
    ]
    for method, path, body in walk:
        theirs = client.request(method, path, json=body, headers=b)
        made_up = path.replace(job_id, "job_01ARZ3NDEKTSV4RRFFQ69G5FAV").replace(
            dataset_id, "ds_01ARZ3NDEKTSV4RRFFQ69G5FAV"
        )
        unknown = client.request(method, made_up, json=body, headers=b)
        assert theirs.status_code == unknown.status_code == 404, (method, path, theirs.text)
        assert theirs.json()["error"]["type"] == "not_found"

    assert client.get("/v1/jobs", headers=b).json()["data"] == []
    assert client.get("/v1/datasets", headers=b).json()["data"] == []
    page = client.get("/v1/jobs", params={"limit": 1}, headers=a).json()
    assert page["data"][0]["id"] == job_id
    body = tiny_job()
    body["data"]["train"] = {"dataset_id": dataset_id}
    for path in ("/v1/validate", "/v1/jobs"):
        borrowed = client.post(path, json=body, headers=b)
        assert borrowed.status_code == 422
        assert "unknown id" in borrowed.json()["error"]["message"]
    # Ours are intact.
    assert client.get(f"/v1/jobs/{job_id}", headers=a).status_code == 200
    assert client.get(f"/v1/datasets/{dataset_id}", headers=a).status_code == 200


def test_serve_auth_defaults() -> None:
    assert serve_auth("127.0.0.1", None) == "off"
    assert serve_auth("localhost", "on") == "on"
    assert serve_auth("::1", None) == "off"
    assert serve_auth("0.0.0.0", None) == "on"
    with pytest.raises(SystemExit) as refused:
        serve_auth("0.0.0.0", "off")
    assert refused.value.code == 2


def test_keys_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    env = child_env({"FITQ_DATA_DIR": str(tmp_path / "data")})

    def fitq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fitq", *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, check=False)  # fmt: skip

    assert fitq("db", "upgrade").returncode == 0
    created = fitq("keys", "create", "--tenant", "acme", "--role", "admin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    prefix, secret = keys.parse(key)
    listed = fitq("keys", "list").stdout
    assert prefix in listed and "acme" in listed and "admin" in listed and secret not in listed
    settings = Settings(data_dir=tmp_path / "data", auth="on")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
        assert fitq("keys", "revoke", prefix).returncode == 0
        assert client.get("/v1/jobs", headers=bearer(key)).status_code == 401
    assert fitq("keys", "revoke", prefix).returncode == 1

    # A name that rich would read as markup is printed as written, after the key.
    odd = fitq("keys", "create", "--tenant", "[/red]")
    assert odd.returncode == 0, odd.stderr
    assert keys.parse(odd.stdout.strip()) and "'[/red]'" in odd.stderr
    # One spelling per name (NFC); control characters refused, and nothing stored for them.
    assert "caf\u00e9" in fitq("keys", "create", "--tenant", "cafe\u0301").stderr
    refused = fitq("keys", "create", "--tenant", "ac\x1bme")
    assert refused.returncode == 2 and "U+001B" in refused.stderr
    assert "ac\x1bme" not in fitq("keys", "list").stdout
