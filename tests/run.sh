#!/bin/sh
# The whole test suite, from a fresh machine with nothing but Python 3.10+:
# installs judge-engine and its test tools into .venv and LiteLLM's proxy (the real
# third-party gateway of the integration test) into .venv-litellm, then runs the
# linter (ruff), the format check, the type checker (mypy on judge_engine/) and pytest.
# Extra arguments go to pytest (e.g. sh tests/run.sh -k prompt).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LITELLM_VERSION=1.106.2

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

# LiteLLM has its own dependency pins: it gets its own environment, kept between runs.
if ! .venv-litellm/bin/python -c "import litellm, prisma" 2>/dev/null \
   || [ "$(.venv-litellm/bin/python -c 'import importlib.metadata as m; print(m.version("litellm"))')" != "$LITELLM_VERSION" ]; then
    "$PYTHON" -m venv .venv-litellm
    .venv-litellm/bin/python -m pip install --quiet --disable-pip-version-check \
        "litellm[proxy]==$LITELLM_VERSION" prisma
fi
JUDGE_ENGINE_LITELLM="$(pwd)/.venv-litellm/bin/litellm"
export JUDGE_ENGINE_LITELLM

# The HTML report is tested in a real browser: Debian's chromium, driven by Playwright
# (its Python package only: it downloads no browser).
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        $SUDO apt-get install -y -q chromium; } >/dev/null 2>&1 \
        || echo "tests/run.sh: could not install chromium; the browser tests will say so" >&2
fi
if command -v chromium >/dev/null 2>&1; then
    JUDGE_ENGINE_CHROMIUM="$(command -v chromium)"
    export JUDGE_ENGINE_CHROMIUM
fi

.venv/bin/ruff check judge_engine tests bench
.venv/bin/ruff format --check judge_engine tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
