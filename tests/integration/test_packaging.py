"""The installed wheel imports as `cautious`, even beside a user's own `pipeline/` package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_wheel_imports_its_tasks_from_a_repository_with_its_own_pipeline_package(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, REPO)
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("cautious-*.whl")

    # A fresh venv that sees the machine's dependencies but not the editable checkout.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", venv).check_returncode()
    python = venv / "bin" / "python"
    installed = _run(python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel)
    assert installed.returncode == 0, installed.stderr

    user_repo = tmp_path / "user-repo"
    (user_repo / "pipeline").mkdir(parents=True)
    (user_repo / "pipeline" / "__init__.py").write_text('"""The user\'s own pipeline."""\n')
    (user_repo / "tasks.py").write_text("from cautious.tasks import ns\n")
    probe = (
        "import cautious, cautious.tasks, pipeline, tasks; "
        "print(cautious.__file__); print(pipeline.__file__); print(sorted(tasks.ns.task_names))"
    )
    imported = _run(python, "-c", probe, cwd=user_repo)

    assert imported.returncode == 0, imported.stderr
    cautious_file, pipeline_file, task_names = imported.stdout.splitlines()
    assert str(venv) in cautious_file, "cautious must come from the installed wheel"
    assert pipeline_file == str(user_repo / "pipeline" / "__init__.py")
    assert "deploy" in task_names
