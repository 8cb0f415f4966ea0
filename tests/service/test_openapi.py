"""``/openapi.json`` describes the API as it behaves: the README's job bodies and real specs
validate against it with a JSON Schema validator (and the server accepts them), every model
and property is described, every error is the envelope, and a client generated from it
with openapi-python-client submits a job and polls it to the end."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fitq.settings import Settings
from fitq.spec.job import EXAMPLE_JOB
from tests.factories import tiny_arrays, tiny_job
from tests.processes import REPO_ROOT

Api = tuple[TestClient, Settings]


def _openapi(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def _validator(document: dict[str, Any], schema: str) -> Draft202012Validator:
    """Validates against ``#/components/schemas/<schema>`` of the OpenAPI document."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:fitq", resource)
    return Draft202012Validator(
        {"$ref": f"urn:fitq#/components/schemas/{schema}"}, registry=registry
    )


def readme_bodies() -> list[dict[str, Any]]:
    """Every ```json block of the README, parsed."""
    text = (REPO_ROOT / "README.md").read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_the_readme_shows_job_bodies_to_check() -> None:
    assert len(readme_bodies()) >= 4


@pytest.mark.parametrize("index", range(len(readme_bodies())))
def test_each_readme_body_matches_the_schema_and_the_server_takes_it(index: int, api: Api) -> None:
    client, _ = api
    body = readme_bodies()[index]
    if "space" in body:  # a sweep: its own schema, and its job a job's
        errors = list(_validator(_openapi(client), "SweepCreate").iter_errors(body))
        assert errors == [], [e.message for e in errors]
        body = body["job"]
    errors = list(_validator(_openapi(client), "JobCreate").iter_errors(body))
    assert errors == [], [e.message for e in errors]
    references = json.dumps(body)
    if '"from_job"' in references or '"dataset_id"' in references:
        return  # names a job or dataset this store does not have
    answer = client.post("/v1/validate", json=body)
    assert answer.status_code == 200, answer.text


SPECS = {
    "the schema's example": EXAMPLE_JOB,
    "a job of the factories": tiny_job(epochs=2),
    "names in every form": {
        **tiny_job(),
        "compile": {"loss": "MeanSquaredError", "optimizer": "RMSprop",
                    "metrics": ["mean_absolute_error", {"type": "r2_score"}]},
    },
    "loss and optimizer objects": {
        **tiny_job(),
        "compile": {"loss": {"type": "mse"}, "optimizer": {"type": "adam", "learning_rate": 0.01}},
    },
    "a parsed keras_config": {
        **tiny_job(),
        "model": {"keras_config": {"class_name": "Sequential", "config": {"layers": [
            {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
            {"class_name": "Dense", "config": {"units": 1}}]}}},
    },
}  # fmt: skip


@pytest.mark.parametrize("name", list(SPECS))
def test_real_specs_match_the_schema(name: str, api: Api) -> None:
    client, _ = api
    validator = _validator(_openapi(client), "JobCreate")
    assert [e.message for e in validator.iter_errors(SPECS[name])] == []
    assert client.post("/v1/validate", json=SPECS[name]).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["compile"].update(loss="msee"),
        lambda b: b["model"]["layers"][0].update(type="Dence"),
        lambda b: b["fit"].update(epochs="10"),
        lambda b: b["model"].update(keras_config="{}"),  # keras_config and layers: both
    ],
    ids=["loss", "layer", "epochs", "keras_config-and-layers"],
)
def test_what_the_schema_refuses_the_server_refuses(change: Any, api: Api) -> None:
    client, _ = api
    body = json.loads(json.dumps(tiny_job()))
    body.setdefault("fit", {})
    change(body)
    assert list(_validator(_openapi(client), "JobCreate").iter_errors(body)) != []
    assert client.post("/v1/validate", json=body).status_code == 422


def test_every_model_and_property_is_described_and_every_error_is_the_envelope(
    api: Api,
) -> None:
    document = _openapi(api[0])
    schemas = document["components"]["schemas"]
    undescribed = [name for name, schema in schemas.items() if not schema.get("description")]
    assert undescribed == []
    bare = [
        f"{name}.{prop}"
        for name, schema in schemas.items()
        for prop, value in schema.get("properties", {}).items()
        if not value.get("description")
    ]
    assert bare == []
    assert "HTTPValidationError" not in json.dumps(document)
    assert not [name for name in schemas if name.startswith("Body_")]
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert len({op["operationId"] for op in operations}) == len(operations)
    for op in operations:
        for status, answer in op["responses"].items():
            probe = op["operationId"] == "readyz"  # its 503 is the readiness it reports
            if status.startswith(("4", "5")) and not probe:
                assert answer["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorEnvelope"
                }, (op["operationId"], status)
            if status == "200":
                assert answer.get("content"), op["operationId"]


def test_a_generated_client_submits_a_job_and_polls_it_to_the_end(
    api: Api, runner: Any, tmp_path: Path
) -> None:
    """openapi-python-client, as an integrator runs it, on this API's schema."""
    from worker.runner import RunResult

    client, _ = api
    (tmp_path / "openapi.json").write_text(json.dumps(_openapi(client)))
    (tmp_path / "config.yml").write_text("literal_enums: true\npackage_name_override: fitq_api\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    generated = subprocess.run(
        [str(Path(sys.executable).parent / "openapi-python-client"), "generate",
         "--path", "openapi.json", "--config", "config.yml", "--meta", "none",
         "--output-path", "fitq_api"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        api_client = importlib.import_module("fitq_api.client")
        create_job = importlib.import_module("fitq_api.api.jobs.create_job")
        get_job = importlib.import_module("fitq_api.api.jobs.get_job")
        job_create = importlib.import_module("fitq_api.models.job_create")
        generated_client = api_client.Client(base_url="http://testserver")
        generated_client.set_httpx_client(client)  # the in-process API, as httpx sees it

        body = tiny_job(epochs=2, test=tiny_arrays(rows=8, seed=2))
        created = create_job.sync(
            client=generated_client, body=job_create.JobCreate.from_dict(body)
        )
        assert created.status == "queued", created
        assert runner.run(created.id) == RunResult.succeeded
        polled = get_job.sync(created.id, client=generated_client)
        assert polled.status == "succeeded"
        assert [entry["epoch"] for entry in polled.to_dict()["history"]] == [1, 2]
        assert isinstance(polled.result.test_loss, float)
        assert set(polled.result.test_metrics.to_dict()) == {"mae", "mse"}
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m.startswith("fitq_api")]:
            del sys.modules[module]
