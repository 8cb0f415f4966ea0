"""Each extra installed alone in a fresh venv, from the built wheel (not editable), as the
images install them: ``pip check`` is clean, every import in the extra's package and in
``fitq`` (lazy ones included) names something that install has, every module imports, and the
``fitq`` command runs. A dev venv with every extra installed hides a missing dependency;
this is where it shows."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT

CHECKER = Path(__file__).with_name("check_imports.py")
# The extra, and the packages its image runs: the SDK alone is the bare install.
INSTALLS = {"": ["fitq"], "service": ["fitq", "service"], "worker": ["fitq", "worker"]}

pytestmark = pytest.mark.integration


def run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, REPO_ROOT], out)
    (built,) = out.glob("fitq-*.whl")
    return built


@pytest.mark.parametrize("extra", list(INSTALLS), ids=lambda extra: extra or "bare")
def test_an_extra_installed_alone_imports_everything_it_ships(
    extra: str, wheel: Path, tmp_path: Path
) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    requirement = f"{wheel}[{extra}]" if extra else str(wheel)
    run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement], tmp_path
    )
    run([python, "-m", "pip", "check"], tmp_path)
    # Importing worker.celery_app and service.main makes their data dir: keep it here.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FITQ_DATA_DIR": str(tmp_path / "data"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    # -I: the installed distribution, never this checkout.
    run([python, "-I", CHECKER, *INSTALLS[extra]], tmp_path, env)
    assert "Usage" in run([tmp_path / "venv" / "bin" / "fitq", "--help"], tmp_path, env)
