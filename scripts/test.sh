#!/usr/bin/env bash
# The test suite: every test with numba on, then the numba kernels' tests again with
# NUMBA_DISABLE_JIT=1 (plain Python) under coverage of dsp/, with a floor: the `kernel` marker
# (given in tests/conftest.py) selects them. Extra arguments go to the first pytest
# (e.g. `-m fast` for the everyday subset).
source "$(dirname "$0")/_venv.sh"
python -m pytest "$@"
echo "[test] kernel tests again with NUMBA_DISABLE_JIT=1, under coverage" >&2
NUMBA_DISABLE_JIT=1 python -m pytest -m kernel --cov=dsp --cov-report=term --cov-fail-under=90
