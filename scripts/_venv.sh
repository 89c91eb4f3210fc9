# Sourced by the scripts: create .venv on first use and install the project with its test extras
# (and the JACK binding: its tests skip without Debian's jackd2).
# Re-installs when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating virtual environment in .venv" >&2
  "$PY" -m venv .venv
fi
STAMP=.venv/.gla-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "[setup] installing gla-receiver and its dependencies (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e ".[test,jack]" >&2
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
