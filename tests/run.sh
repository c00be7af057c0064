#!/bin/sh
# The whole test suite, from a fresh machine with nothing but Python 3.10+:
# installs judge-engine and its test tools into .venv, then runs the linter (ruff),
# the format check, the type checker (mypy on judge_engine/) and pytest.
# Extra arguments go to pytest (e.g. sh tests/run.sh -k prompt).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check judge_engine tests bench
.venv/bin/ruff format --check judge_engine tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
