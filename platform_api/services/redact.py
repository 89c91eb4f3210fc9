"""Customer data is the operator's: what an anonymous reader of the JSON API does not see.

A meter's ``account`` and premise ``address`` (imported with the Inventory, carried by theft
alerts) are shown only to callers with the admin credential (:func:`platform_api.api.deps.is_admin`).
For everyone else every answer that could carry them goes through :func:`withhold`, one rule for
all of them, so that a new field or event type named ``account``/``address`` is covered too:

* a key in :data:`CUSTOMER_KEYS`, at any depth (a meter, a hub's TAN, an event's ``details``, a
  theft finding's ``alert`` and its ``meters``), keeps its place with the value ``None``;
* the values so removed are also taken out of every text in the same answer: a theft alert's
  title "possible theft (...): meter 70003 at 12 Elm Street on transformer T-100" becomes
  "possible theft (...): meter 70003 on transformer T-100";
* a history row of a meter's account or address (``field`` is the key) has ``old`` and ``new``
  withheld; the row itself (that it changed, when, why) stays.

The exports that carry these fields (``/api/v1/export/*``) need the credential outright.
"""

from __future__ import annotations

import re
from typing import Any

#: the fields that identify a customer
CUSTOMER_KEYS = frozenset({"account", "address", "meter_account", "meter_address"})
#: what a withheld value reads as inside a text
WITHHELD_TEXT = "(withheld)"


def _values(obj: Any, out: set[str]) -> set[str]:
    """The customer values in ``obj``: under a customer key, or a history row's old/new of one."""
    if isinstance(obj, dict):
        row = obj.get("field") in CUSTOMER_KEYS
        for k, v in obj.items():
            if isinstance(v, str) and v.strip() and (k in CUSTOMER_KEYS or (row and k in ("old", "new"))):
                out.add(v.strip())
            else:
                _values(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _values(v, out)
    return out


def _scrubber(values: set[str]):
    """A function taking the values out of a text: " at <address>" as a whole (how the theft
    alert's title names it), any other occurrence of a whole value as :data:`WITHHELD_TEXT`."""
    if not values:
        return lambda text: text
    alts = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    # a whole value: not inside a longer word, number or id ("7" is not taken out of "T-7", "3.7")
    at = re.compile(rf" at (?:{alts})(?![\w-]|\.\d)")
    bare = re.compile(rf"(?<![\w.-])(?:{alts})(?![\w-]|\.\d)")
    return lambda text: bare.sub(WITHHELD_TEXT, at.sub("", text))


def _walk(obj: Any, scrub) -> Any:
    if isinstance(obj, dict):
        row = obj.get("field") in CUSTOMER_KEYS
        return {
            k: None if k in CUSTOMER_KEYS or (row and k in ("old", "new")) else _walk(v, scrub) for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_walk(v, scrub) for v in obj]
    if isinstance(obj, str):
        return scrub(obj)
    return obj


def withhold(obj: Any) -> Any:
    """A copy of a JSON-ready answer (a dict, or a list of them) with the customer data withheld
    as the module doc says; ``obj`` itself is left alone."""
    return _walk(obj, _scrubber(_values(obj, set())))


def shown(obj: Any, admin: bool) -> Any:
    """``obj`` for the operator (``admin``), :func:`withhold` of it for everyone else."""
    return obj if admin else withhold(obj)
