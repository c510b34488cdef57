"""The Jenkins shared library (actions/jenkins), run by tests/actions/jenkins/harness.groovy.

Groovy 2.4 (Debian's `groovy`, the language level Jenkins runs) with JAVA_HOME at the machine's
OpenJDK 17 loads vars/*.groovy and src/ with GroovyShell, stubs the Jenkins steps (sh, junit,
archiveArtifacts, error, unstable, dir, withEnv, readJSON, fileExists, libraryResource) and runs
the example Jenkinsfile through a small interpreter of the declarative syntax. The harness
prints one line per test and "N passed, N failed".
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
from pathlib import Path

from tests.actions.conftest import (
    JENKINS,
    RELEASE,
    RELEASE_TAG,
    missing,
    need,
    offline_pip,
)

HARNESS = Path(__file__).resolve().parent / "jenkins" / "harness.groovy"
SETUP_SH = JENKINS / "resources" / "io" / "cautious" / "jenkins" / "setup.sh"
EXPECTED_TESTS = 17


def _java_home() -> str:
    """OpenJDK 17, which Debian's Groovy 2.4 runs on (a newer JDK may break it)."""
    candidates = sorted(glob.glob("/usr/lib/jvm/java-17-openjdk-*"))
    configured = os.environ.get("JAVA_HOME")
    if configured and "17" in Path(configured).name:
        candidates.insert(0, configured)
    for candidate in candidates:
        if Path(candidate, "bin", "java").is_file():
            return candidate
    missing("no OpenJDK 17 under /usr/lib/jvm (apt-get install openjdk-17-jre-headless)")
    raise AssertionError("unreachable")


def test_the_groovy_harness_passes() -> None:
    groovy = need("groovy", "apt-get install groovy default-jre-headless")
    env = {**os.environ, "JAVA_HOME": _java_home()}
    result = subprocess.run(
        [groovy, str(HARNESS), str(JENKINS), str(HARNESS.parent / "stubs")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    closing = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.MULTILINE)
    assert closing, f"no closing line from the harness:\n{output}"
    passed, failed = (int(n) for n in closing.groups())
    assert failed == 0 and result.returncode == 0, output
    assert passed == EXPECTED_TESTS, output
    assert "not ok" not in result.stdout


def test_the_library_has_the_layout_jenkins_expects() -> None:
    """Jenkins loads vars/NAME.groovy as step NAME and src/ as the classpath."""
    for step in ("cautiousSetup", "cautiousRollout", "cautiousGameday"):
        assert (JENKINS / "vars" / f"{step}.groovy").is_file()
        assert (JENKINS / "vars" / f"{step}.txt").is_file(), "help shown in Pipeline Syntax"
    for source in (JENKINS / "src").rglob("*.groovy"):
        package = source.read_text(encoding="utf-8").split("\n", 1)[0]
        expected = ".".join(source.relative_to(JENKINS / "src").parent.parts)
        assert package == f"package {expected}", source
    assert (JENKINS / "resources" / "io" / "cautious" / "jenkins" / "setup.sh").is_file()
    assert "cron(" in (JENKINS / "examples" / "Jenkinsfile").read_text(encoding="utf-8")


def test_the_setup_script_passes_shellcheck() -> None:
    shellcheck = need("shellcheck", "apt-get install shellcheck")
    result = subprocess.run(
        [shellcheck, "--severity=style", str(SETUP_SH)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_the_setup_script_installs_the_suite_at_the_librarys_version(
    released: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    """What cautiousSetup() runs for @Library('cautious@v0.2.0'), against a clone as the remote."""
    repository = f"git+file://{released}@{RELEASE_TAG}"
    env = {
        **os.environ,
        **offline_pip(wheelhouse),
        "CAUTIOUS_PACKAGE": repository,
        "CAUTIOUS_CHAOS_PACKAGE": f"{repository}#subdirectory=chaos",
        "CAUTIOUS_VENV": str(tmp_path / "venv"),
        "CAUTIOUS_CHECK_DOCKER": "false",
    }

    result = subprocess.run(
        ["bash", str(SETUP_SH)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Cautious {RELEASE}" in result.stdout.splitlines()
    extension = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-c", _EXTENSION_VERSION],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert extension.stdout.strip() == RELEASE


_EXTENSION_VERSION = "import chaoscautious; print(chaoscautious.__version__)"
