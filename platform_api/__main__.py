"""``python -m platform_api [--host H] [--port P]``: serve the app (settings from GLA_* variables)."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m platform_api", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    a = p.parse_args()
    uvicorn.run("platform_api.main:create_app", factory=True, host=a.host, port=a.port, log_level=a.log_level)


if __name__ == "__main__":
    main()
