#!/usr/bin/env bash
# The guard rails, configured in pyproject.toml: ruff (lint and format check), mypy (lenient) and
# the import contracts (lint-imports). Every check runs, so one pass lists every finding; the
# script fails if any check failed. Extra arguments go to `ruff check` (e.g. --statistics).
source "$(dirname "$0")/_venv.sh"
failed=()
run() {
  echo "[lint] $*" >&2
  "$@" || failed+=("$*")
}
run ruff check --output-format=concise "$@" .
run ruff format --check --output-format=concise .
run mypy
run lint-imports
if [ ${#failed[@]} -gt 0 ]; then
  printf '[lint] failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "[lint] all checks passed" >&2
