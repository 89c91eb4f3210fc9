from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    revision: str | None
    head: str | None


class Info(BaseModel):
    name: str
    version: str
    mode: str
    substation_id: str
    bundle_schema_version: str
    air_interface_version: int
    database_backend: str
    forwarding: bool
    background: bool
