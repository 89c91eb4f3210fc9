#!/usr/bin/env bash
# The test suite: every test with numba on, then the numba kernels' tests again with
# NUMBA_DISABLE_JIT=1 (plain Python: the coverage run of the kernels against their references).
# Extra arguments go to the first pytest.
source "$(dirname "$0")/_venv.sh"
python -m pytest "$@"
echo "[test] kernel tests again with NUMBA_DISABLE_JIT=1" >&2
NUMBA_DISABLE_JIT=1 python -m pytest -m "not slow" \
  -k "(test_tx or test_viterbi or naive or matched_filter) and not modulat and not burst and not 10000 and not commpy" \
  tests/test_tx.py tests/test_viterbi.py tests/test_rx.py tests/test_blanker.py
