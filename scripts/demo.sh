#!/usr/bin/env bash
# The main job on embedded defaults: simulate the demo substation and report what was sent.
# Extra arguments go to `gla demo`.
source "$(dirname "$0")/_venv.sh"
exec gla demo "$@"
