"""The interactive API documentation works without internet: /docs (Swagger UI) and /redoc
(ReDoc) load their scripts and styles from the package, reference no external URL, and the
files (with their licences) are in the wheel's package data."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

from platform_api.api.routes.apidocs import ASSETS, DOCS_STATIC

ROOT = Path(__file__).resolve().parents[1]
#: any absolute URL a browser could fetch (href/src/url(...) or a string in an inline script)
EXTERNAL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}""")


def _refs(html: str) -> list[str]:
    """Every href=, src= and spec-url= and every quoted URL of the page's inline scripts."""
    attrs = re.findall(r"""(?:href|src|spec-url)\s*=\s*["']([^"']+)["']""", html)
    quoted = re.findall(r"""(?:url|spec)\s*:\s*['"]([^'"]+)['"]""", html)
    return attrs + quoted


def test_docs_and_redoc_load_everything_from_the_platform(platform):
    c = platform.client
    for page, wanted in (("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}), ("/redoc", {"redoc.standalone.js"})):
        r = c.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert not EXTERNAL.search(r.text), (page, EXTERNAL.findall(r.text))
        refs = _refs(r.text)
        assert {u.rsplit("/", 1)[-1] for u in refs if u.startswith("/docs/assets/")} >= wanted
        assert "/openapi.json" in refs
        for u in refs:
            assert u.startswith("/"), u  # nothing outside this platform
            got = c.get(u)
            assert got.status_code == 200, u
            if u.startswith("/docs/assets/"):
                name = u.rsplit("/", 1)[-1]
                assert got.content == (DOCS_STATIC / name).read_bytes()
                assert got.headers["content-type"] == ASSETS[name]
    assert "validatorUrl" in c.get("/docs").text  # the validator badge (validator.swagger.io) is off
    assert c.get("/docs/oauth2-redirect").status_code == 200
    # only the listed files are served
    assert c.get("/docs/assets/README.md").status_code == 404
    assert c.get("/docs/assets/..%2F..%2Fmain.py").status_code == 404


def test_the_assets_their_licences_and_the_package_data():
    for name in ASSETS:
        assert (DOCS_STATIC / name).stat().st_size > 0, name
    for lic in ("swagger-ui.LICENSE", "swagger-ui.NOTICE", "redoc.LICENSE", "README.md"):
        assert (DOCS_STATIC / lic).stat().st_size > 0, lic
    assert "Apache License" in (DOCS_STATIC / "swagger-ui.LICENSE").read_text()
    assert "MIT License" in (DOCS_STATIC / "redoc.LICENSE").read_text()
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "platform_api"
    ]
    for f in DOCS_STATIC.iterdir():
        rel = PurePosixPath(f.relative_to(ROOT / "platform_api").as_posix())
        # setuptools globs: "*" stays within one directory
        found = any(len(rel.parts) == len(PurePosixPath(p).parts) and rel.match(p) for p in patterns)
        assert found, f"{rel} is not in the wheel's package data"
