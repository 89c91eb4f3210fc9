"""Hostile inputs, surface by surface: the generators and the properties every input must keep.

Each surface module (:mod:`.http`, :mod:`.zmq`, :mod:`.capture`, :mod:`.csv_import`,
:mod:`.spool`) has hypothesis strategies that make hostile inputs and ``check_*`` functions that
feed one input to the real component and return the :class:`Problem` s it caused (an empty list:
the input was handled as it should). Needs hypothesis (a test dependency); nothing in the product
imports this package. The tests (``tests/test_hostile_*.py``) run the strategies
with a few hundred examples and assert no problem; ``benchmarks/bench_reliability.py`` runs them
with thousands and counts (:func:`explore`).

Problem kinds, one per property:

- ``server_error``: the platform answered 5xx, or an exception left the app;
- ``crash``: an exception other than the component's documented refusal left a receiver
  component (a bad message is counted, a bad file raises ValueError/OSError or the component's
  own error type);
- ``lost``: something already accepted (a stored bundle, spooled bundle, archived line, clean
  stream's samples, imported readings) is gone or changed after the hostile input;
- ``not_refused``: an input the contract says must be refused (e.g. NaN in a bundle) was taken;
- ``unclear_error``: the refusal had the right type but its message does not name the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

KINDS = ("server_error", "crash", "lost", "not_refused", "unclear_error")


@dataclass(frozen=True)
class Problem:
    kind: str  #: one of KINDS
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"problem kind must be one of {KINDS}, got {self.kind!r}")


def short(x: Any, n: int = 300) -> str:
    """``repr`` of an input cut to ``n`` characters: a reproducer that fits in a report."""
    r = repr(x)
    return r if len(r) <= n else r[: n - 20] + f"... ({len(r)} chars)"


@dataclass
class Tally:
    """What one surface's run found: inputs tried, problems by kind, the first few of each."""

    surface: str
    tried: int = 0
    problems: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    examples: dict[str, list[dict]] = field(default_factory=dict)
    keep: int = 5

    def record(self, x: Any, found: list[Problem]) -> None:
        for p in found:
            self.problems[p.kind] += 1
            ex = self.examples.setdefault(p.kind, [])
            if len(ex) < self.keep:
                ex.append({"input": short(x), "detail": p.detail[:500]})

    def as_dict(self) -> dict:
        return {"surface": self.surface, "tried": self.tried, **self.problems, "examples": self.examples}


def explore(strategy: st.SearchStrategy, check: Callable[[Any], list[Problem]], n: int, tally: Tally) -> None:
    """Run ``check`` on ``n`` inputs of ``strategy`` (reproducible: derandomized, no database, no
    shrinking), counting problems in ``tally`` instead of stopping at the first. An exception out
    of ``check`` itself counts as a crash."""

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(x: Any) -> None:
        tally.tried += 1
        try:
            found = check(x)
        except Exception as e:  # noqa: BLE001 - counted, that is the point
            found = [Problem("crash", f"{type(e).__name__}: {e}")]
        tally.record(x, found)

    run()


def ci_settings(n: int, *, shrink: bool = True) -> settings:
    """The tests' hypothesis settings: ``n`` examples, reproducible in CI (derandomized, no
    example database), no deadline (a shared CI machine), health checks that would fire on a
    function-scoped platform fixture suppressed. ``shrink=False`` for a test expected to fail
    (a strict xfail): no time spent shrinking its counterexample."""
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )


def only(found: list[Problem], *kinds: str) -> list[Problem]:
    return [p for p in found if p.kind in kinds]
