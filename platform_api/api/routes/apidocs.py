"""The interactive API documentation, served from the package: ``/docs`` (Swagger UI) and
``/redoc`` (ReDoc), with their scripts and styles under ``/docs/assets/`` (the files in
``platform_api/static/docs/``, see its README for versions and licences).

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN and a favicon from
fastapi.tiangolo.com, ReDoc also Google Fonts: a blank page on a machine without internet, which
a substation often is. The app is made with ``docs_url=None, redoc_url=None`` and these routes
build the same pages with :func:`fastapi.openapi.docs.get_swagger_ui_html` /
:func:`~fastapi.openapi.docs.get_redoc_html` pointing at the package's copies; Swagger UI's
validator badge (validator.swagger.io) is off.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

DOCS_STATIC = FsPath(__file__).resolve().parents[2] / "static" / "docs"
ASSET_PREFIX = "/docs/assets/"
#: the files the pages load, and their media types (nothing else under static/docs is served)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
#: the files change only with the package: a day in the browser's cache
CACHE = {"Cache-Control": "public, max-age=86400"}


def _title(request: Request) -> str:
    return request.app.title


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{_title(request)} - Swagger UI",
        swagger_js_url=ASSET_PREFIX + "swagger-ui-bundle.js",
        swagger_css_url=ASSET_PREFIX + "swagger-ui.css",
        swagger_favicon_url=ASSET_PREFIX + "favicon-32x32.png",
        oauth2_redirect_url=OAUTH2_REDIRECT,
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{_title(request)} - ReDoc",
        redoc_js_url=ASSET_PREFIX + "redoc.standalone.js",
        redoc_favicon_url=ASSET_PREFIX + "favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get(ASSET_PREFIX + "{name}")
def asset(name: Annotated[str, Path(max_length=64)]) -> FileResponse:
    media = ASSETS.get(name)
    if media is None:
        raise HTTPException(status_code=404, detail="no such documentation asset")
    return FileResponse(DOCS_STATIC / name, media_type=media, headers=CACHE)
