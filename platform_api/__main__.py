"""``python -m platform_api [--host H] [--port P]``: serve the app (settings from GLA_* variables).

Binds 127.0.0.1 unless ``--host`` says otherwise (``--host 0.0.0.0`` opens it to the network: put
TLS in front, see docs/deployment.md). At start it logs the database (a SQLite path, or the URL
without its password), where the admin credential was created the first time, and the
dashboard's URL.
"""

from __future__ import annotations

import argparse
import copy
import logging
import logging.config
import os

import uvicorn

log = logging.getLogger("gla.platform")


def log_config(level: str) -> dict:
    """uvicorn's logging configuration with the platform's own ``gla.*`` loggers on its handler."""
    cfg = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    cfg["loggers"]["gla"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return cfg


def dashboard_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/dashboard"


def serve(host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", database_url: str | None = None) -> None:
    """Build the app (settings from GLA_* variables), log where things are, and serve it."""
    from .core.admin import AdminTokenError
    from .core.config import SettingsError
    from .main import create_app

    if database_url:
        os.environ["GLA_DATABASE_URL"] = database_url
    cfg = log_config(log_level)
    logging.config.dictConfig(cfg)
    try:
        app = create_app()
    except (AdminTokenError, SettingsError) as e:
        raise SystemExit(f"platform: {e}") from None
    where = "all interfaces" if host in ("0.0.0.0", "::") else host
    log.info("dashboard: %s (listening on %s, port %d)", dashboard_url(host, port), where, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, log_config=cfg)


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m platform_api", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="server log level",
    )
    a = p.parse_args()
    serve(a.host, a.port, a.log_level)


if __name__ == "__main__":
    main()
