"""Constrained types shared by the API models (bounded so every backend stores what validates)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

ID_PATTERN = r"^[A-Za-z0-9._:/@-]+$"
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
Text = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
Small = Annotated[int, Field(ge=0, le=100_000)]
TanIndex = Annotated[int, Field(ge=0, le=255)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Phase = Literal["A", "B", "C"]
KeyHex = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$", description="AES-128 key, 32 hex digits")]
Role = Literal["hub", "subordinate", "spare_hub", "proxy_hub", "subordinate_other_phase"]
Mode = Literal["hub", "subordinate", "proxy"]
