"""The dashboard in a real browser: Debian's Chromium (/usr/bin/chromium, never a downloaded
one) driven by Playwright against a real API and workers with keys on. It asks for the key,
draws a finished job's curves, shows its results, and cancels a running job. The run saves
screenshots of the job page at 1280 and 1920 px (docs/dashboard-1280.png is one)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE
from tests.factories import tiny_arrays, tiny_job
from tests.fuzz.api import create_key
from tests.integration.conftest import FAST_RECOVERY, migrate
from tests.processes import Stack, finished, poll_job
from tests.services import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = os.environ.get("FITQ_DASHBOARD_SCREENSHOT")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def secured_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    workdir = tmp_path_factory.mktemp("dashboard")
    env = {"FITQ_DATA_DIR": str(workdir / "fitq"), **FAST_RECOVERY, "FITQ_AUTH": "on"}
    migrate(env)
    key = create_key(env, "dash")
    stack = Stack(env, workdir)
    try:
        stack.start_api()
        stack.start_worker("service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}")
        stack.start_worker()
        yield stack, key
    finally:
        stack.stop()


def test_the_dashboard_draws_curves_and_cancels(
    browser: object, secured_stack: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, key = secured_stack
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=60) as client:
        body = tiny_job(epochs=6)
        body["fit"]["validation_split"] = 0.25
        body["data"]["test"] = {k: v.tolist() for k, v in tiny_arrays(rows=16, seed=3).items()}
        done_id = client.post("/v1/jobs", json=body).json()["id"]
        done, _ = poll_job(client, done_id, finished, 120)
        assert done["status"] == "succeeded", done["error"]

        page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
        page.goto(stack.base_url + "/")
        page.fill("#key", key)  # auth is on: the page asks, and keeps it in this tab only
        page.click("#key-form button")
        page.click(f"#jobs tr[data-id='{done_id}']")
        loss = page.locator("svg[data-metric='loss'] polyline[data-name='loss']")
        loss.wait_for()
        assert len(loss.get_attribute("points").split()) == 6  # one point per epoch
        assert page.locator("svg[data-metric='loss'] polyline[data-name='val_loss']").count() == 1
        assert page.locator("svg[data-metric='mae']").count() == 1
        assert page.text_content("#job-status") == "succeeded"
        assert "test loss" in page.text_content("#test-results")
        assert page.locator("#summary tbody tr").count() == 2
        assert page.evaluate("sessionStorage.getItem('fitq_api_key')") == key
        # Axes: epochs along x, ticked values along y; the pointer reads an epoch's values.
        loss_chart = page.locator("svg[data-metric='loss']")
        assert loss_chart.locator("text.x-tick").all_text_contents()[0] == "1"
        assert loss_chart.locator("text.y-tick").count() >= 2
        loss_chart.locator("rect.band[data-epoch='3']").hover()
        readout = page.locator(".chart .readout").first.text_content()
        assert readout.startswith("epoch 3: loss ") and "val_loss" in readout
        same_precision = page.locator("#test-results td").all_text_contents()[1::2][:3]
        assert len({len(v.replace("-", "").replace(".", "")) for v in same_precision}) == 1
        # Inline data is listed under its job, not among uploaded datasets.
        assert page.locator("#datasets tbody tr").count() == 0
        data_rows = page.locator("#job-data tbody tr").all_text_contents()
        assert data_rows[0].startswith("train") and data_rows[1].startswith("test")
        assert page.locator("#job-link").get_attribute("href") == f"#job/{done_id}"
        assert httpx.get(stack.base_url + "/favicon.ico").status_code == 200
        for width in (1280, 1920):  # no column cut: the page never scrolls sideways
            page.set_viewport_size({"width": width, "height": 1000})
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
            created = page.locator("#jobs tbody tr td").nth(3).bounding_box()
            lists = page.locator("#lists").bounding_box()
            assert created["x"] + created["width"] <= lists["x"] + lists["width"] + 1
            shot = tmp_path / f"dashboard-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            if SCREENSHOT:
                shutil.copy(shot, Path(SCREENSHOT).with_name(f"dashboard-{width}.png"))

        long = tiny_job(epochs=2000, train=tiny_arrays(rows=512))
        running_id = client.post("/v1/jobs", json=long).json()["id"]
        poll_job(client, running_id, lambda j: j["status"] == "running", 60)
        page.goto(f"{stack.base_url}/#job/{running_id}")
        page.click("#cancel")
        page.wait_for_function(
            "document.getElementById('job-status').textContent === 'cancelled'", timeout=30_000
        )
        job = client.get(f"/v1/jobs/{running_id}").json()
        assert job["status"] == "cancelled" and job["progress"]["epoch"] < 2000


def test_a_graph_models_wiring_is_shown(browser: object, secured_stack: tuple[Stack, str]) -> None:
    """Two inputs, two outputs: the inputs, what each layer is called on, the outputs."""
    stack, key = secured_stack
    x = tiny_arrays(rows=16)["x"]
    body = {
        "model": {
            "inputs": [{"name": "a", "shape": [4]}, {"name": "b", "shape": [4]}],
            "layers": [
                {"type": "Concatenate", "name": "ab", "inputs": ["a", "b"]},
                {"type": "Dense", "name": "p", "units": 1},
                {"type": "Dense", "name": "q", "units": 2, "inputs": ["ab"]},
            ],
            "outputs": ["p", "q"],
        },
        "compile": {"loss": "mse"},
        "data": {"train": {"x": {"a": x.tolist(), "b": x.tolist()},
                           "y": {"p": x[:, 0].tolist(), "q": x[:, :2].tolist()}}},
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=60) as client:
        answer = client.post("/v1/jobs", json=body)
        assert answer.status_code == 202, answer.text
        job, _ = poll_job(client, answer.json()["id"], finished, 120)
        assert job["status"] == "succeeded", job["error"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(stack.base_url + "/")
    page.fill("#key", key)
    page.click("#key-form button")
    page.goto(f"{stack.base_url}/#job/{job['id']}")
    rows = page.locator("#summary tbody tr")
    rows.nth(4).wait_for()
    cells = [[c.strip() for c in rows.nth(i).locator("td").all_text_contents()] for i in range(5)]
    assert cells[0][:2] == ["InputLayer", "a"] and cells[1][:2] == ["InputLayer", "b"]
    assert cells[2] == ["Concatenate", "ab", "a, b", "(None, 8)", "0"]
    assert cells[3][1] == "p → output" and cells[4][1:3] == ["q → output", "ab"]


def test_a_sweep_shows_its_trials_objective_and_best_curves(
    browser: object, secured_stack: tuple[Stack, str]
) -> None:
    stack, key = secured_stack
    job = tiny_job(epochs=3)
    job.pop("seed")
    job["fit"]["validation_split"] = 0.25
    rate = {"type": "float", "low": 1e-3, "high": 0.1, "log": True}
    body = {
        "job": job,
        "space": {"compile.optimizer.learning_rate": rate},
        "sampler": "random",
        "max_trials": 3,
        "parallelism": 1,
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=60) as client:
        created = client.post("/v1/sweeps", json=body)
        assert created.status_code == 202, created.text
        sweep_id = created.json()["id"]
        deadline = time.monotonic() + 120
        while (sweep := client.get(f"/v1/sweeps/{sweep_id}").json())["status"] != "succeeded":
            assert time.monotonic() < deadline, sweep
            time.sleep(0.2)
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(stack.base_url + "/")
    page.fill("#key", key)
    page.click("#key-form button")
    page.click(f"#sweeps tbody tr:has-text('{sweep_id}')")
    page.locator("#trials tbody tr").nth(2).wait_for()
    assert page.text_content("#sweep-status") == "succeeded"
    header = page.locator("#trials thead th").all_text_contents()
    assert header == ["trial", "state", "val_loss", "epochs", "learning_rate"]
    full = page.locator("#trials thead th").nth(4).get_attribute("title")
    assert full == "compile.optimizer.learning_rate"
    best = sweep["best"]
    best_row = page.locator("#trials tbody tr.best td").all_text_contents()
    assert best_row[:2] == [str(best["number"]), "complete"]
    points = page.locator("#sweep-objective polyline[data-name='val_loss']").get_attribute("points")
    assert len(points.split()) == 3  # one value per completed trial
    assert page.locator("#sweep-objective text.axis-title").text_content() == "trial"
    curve = page.locator("#sweep-charts svg[data-metric='loss'] polyline[data-name='val_loss']")
    assert len(curve.get_attribute("points").split()) == 3  # the best trial's epochs
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    trials = page.locator("#trials").bounding_box()
    section = page.locator("#sweep").bounding_box()
    assert trials["x"] + trials["width"] <= section["x"] + section["width"] + 1  # nothing cut
    if SCREENSHOT:
        page.screenshot(path=str(Path(SCREENSHOT).with_name("dashboard-sweep.png")), full_page=True)
    page.click(f"#trials a[href='#job/{best['job_id']}']")
    page.wait_for_function(
        f"document.getElementById('job-title').textContent === '{best['job_id']}'"
    )
    assert page.locator("#sweep").is_hidden()


def test_the_page_and_its_files_are_served_without_a_key(secured_stack: tuple[Stack, str]) -> None:
    stack, _ = secured_stack
    page = httpx.get(stack.base_url + "/")
    assert page.status_code == 200 and "<title>fitq</title>" in page.text
    script = httpx.get(stack.base_url + "/static/app.js")
    assert script.status_code == 200 and "sessionStorage" in script.text
    assert "http" not in page.text.replace("http://www.w3.org", "")  # no CDN: works offline
    assert httpx.get(stack.base_url + "/v1/jobs").status_code == 401  # the data still needs a key
