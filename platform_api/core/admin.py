"""The operators' credential: closed by default, made at first start, kept beside the database.

The operator routes (every route that changes state, except the receivers' own ingest and
health routes, which take the receiver's token, and the exports that carry customer data) need
``Authorization: Bearer <admin token>``. There is no open mode: with no ``GLA_ADMIN_TOKEN``, the
platform reads the token from its token file, and on the very first start creates that file
(``secrets.token_urlsafe``, mode 0600, created exclusively so that two starting processes cannot
both write it, then fsynced with its directory) and logs once *where* it is, never the token.

Where the file lives (``GLA_ADMIN_TOKEN_FILE`` overrides it): in the state directory, which is
``GLA_STATE_DIR`` if set, else the SQLite file's directory, else ``$STATE_DIRECTORY`` (what
systemd's ``StateDirectory=`` exports; a PostgreSQL deployment under the shipped unit), else
``~/.local/state/gla-platform``. An in-memory SQLite database (tests) without a state directory
gets a token that lives only in the process (``app.state.platform.admin_token``).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from .config import Settings

log = logging.getLogger("gla.platform")

TOKEN_FILE_NAME = "admin-token"


class AdminTokenError(RuntimeError):
    """The admin token file cannot be read or made (one line naming the file and the reason)."""


@dataclass(frozen=True)
class AdminCredential:
    token: str
    #: the file it was read from or written to; None when GLA_ADMIN_TOKEN gave it or it is in memory only
    path: Path | None
    #: made by this start (the file did not exist)
    created: bool
    source: str  # "GLA_ADMIN_TOKEN", "file" or "memory"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (absolute); None for PostgreSQL or an in-memory database."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    db = u.database or ""
    if db in ("", ":memory:") or db.startswith("file::memory:"):
        return None
    return Path(db).expanduser().resolve()


def describe_database(url: str) -> str:
    """What to log about the database: a SQLite file's path, or the URL without its password."""
    path = sqlite_file(url)
    if path is not None:
        return f"SQLite file {path}"
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return "SQLite in memory (nothing is kept after exit)"
    return u.render_as_string(hide_password=True)


def state_dir(settings: Settings) -> Path | None:
    """The directory of the platform's own files (see the module docstring); None: none (in memory)."""
    if settings.state_dir:
        return Path(settings.state_dir).expanduser().resolve()
    db = sqlite_file(settings.database_url)
    if db is not None:
        return db.parent
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        return None  # in-memory SQLite: a throwaway platform (tests)
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]).resolve()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg).expanduser().resolve() / "gla-platform"


def token_path(settings: Settings) -> Path | None:
    if settings.admin_token_file:
        return Path(settings.admin_token_file).expanduser().resolve()
    d = state_dir(settings)
    return None if d is None else d / TOKEN_FILE_NAME


def _read(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise AdminTokenError(f"admin token file {path}: cannot read it ({e})") from None
    if not token or any(c.isspace() for c in token):
        raise AdminTokenError(f"admin token file {path}: must hold one token (no spaces), found {len(token)} chars")
    if mode & 0o077:
        log.warning("admin token file %s has mode %04o: others may read it; run chmod 600 %s", path, mode, path)
    return token


def _create(path: Path) -> str | None:
    """A new token written to ``path``; None when another process made the file first."""
    token = "gla_admin_" + secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as e:
        raise AdminTokenError(f"admin token file {path}: cannot create it ({e}); set GLA_ADMIN_TOKEN_FILE") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:  # the file's name survives a power cut too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return token


def ensure_admin_token(settings: Settings) -> AdminCredential:
    """The admin token: ``GLA_ADMIN_TOKEN`` if set, else the token file's, else a new one written
    there (logged once: its place, never its value). Raises :class:`AdminTokenError`."""
    if settings.admin_token:
        return AdminCredential(settings.admin_token, None, False, "GLA_ADMIN_TOKEN")
    path = token_path(settings)
    if path is None:
        return AdminCredential("gla_admin_" + secrets.token_urlsafe(32), None, True, "memory")
    if path.exists():
        return AdminCredential(_read(path), path, False, "file")
    token = _create(path)
    if token is None:  # another process made it between exists() and our create
        return AdminCredential(_read(path), path, False, "file")
    log.warning(
        "created the admin credential in %s (mode 0600): operator routes need 'Authorization: Bearer <its content>'",
        path,
    )
    return AdminCredential(token, path, True, "file")
