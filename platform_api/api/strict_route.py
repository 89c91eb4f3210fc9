"""The route class of every JSON route: a body that is not strict JSON (NaN, ±Infinity, a key
given twice, bytes that are not UTF-8; :mod:`platform_api.core.strictjson`) is a 422 naming the
place, before FastAPI's own parser (which reads NaN as a float and keeps the last of duplicate
keys) sees it. The bundle routes parse their bodies strictly themselves (one parse on the ingest
path) and keep FastAPI's plain route class."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from ..core import strictjson


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a content type as JSON
    m = Message()
    m["content-type"] = content_type
    sub = m.get_content_subtype()
    return m.get_content_maintype() == "application" and (sub == "json" or sub.endswith("+json"))


class StrictJSONRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` whose JSON body is checked by ``strictjson`` first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # no body to read
            return handler

        async def strict(request: Request) -> Response:
            if _is_json(request.headers.get("content-type")):
                raw = await request.body()  # cached on the request: the handler reads it again for free
                if raw:
                    try:
                        strictjson.loads(raw)
                    except strictjson.Refused as e:
                        raise RequestValidationError([{"loc": e.loc, "msg": e.msg, "type": e.type}]) from None
            return await handler(request)

        return strict
