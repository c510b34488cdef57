#!/usr/bin/env bash
# cautiousSetup: install Cautious into a virtual environment and check that Docker answers.
# Inputs arrive through the environment: CAUTIOUS_PYTHON, CAUTIOUS_PACKAGE (a pip requirement,
# by default the library's own repository at its version), CAUTIOUS_CHAOS_PACKAGE (the Chaos
# Toolkit extension, or empty), CAUTIOUS_VENV, CAUTIOUS_CHECK_DOCKER.
set -euo pipefail

python=${CAUTIOUS_PYTHON:-python3}
package=${CAUTIOUS_PACKAGE:?cautiousSetup passes the requirement to install}
venv=${CAUTIOUS_VENV:-.cautious-venv}
requirements=("$package")
if [ -n "${CAUTIOUS_CHAOS_PACKAGE:-}" ]; then requirements+=("$CAUTIOUS_CHAOS_PACKAGE"); fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "cautious setup: no Python interpreter '$python' on this agent (3.11+ needed)" >&2
    exit 2
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "cautious setup: Cautious needs Python 3.11 or newer; '$python' is $("$python" -V 2>&1)" >&2
    exit 2
fi
# --system-site-packages: dependencies the agent already has are reused, not downloaded.
"$python" -m venv --system-site-packages "$venv"
echo "cautious setup: installing ${requirements[*]} into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
"$venv/bin/cautious" --version

if [ "${CAUTIOUS_CHECK_DOCKER:-true}" = true ]; then
    if ! version=$(docker version --format '{{.Server.Version}}' 2>&1); then
        echo "cautious setup: no Docker engine answers ($version); the sandbox needs one" >&2
        exit 2
    fi
    echo "Docker engine $version"
fi
