"""Meter swaps and moves, from what the grid map saw in two periods or from TAN membership events.

A thief can swap meters with a neighbour (during an outage) before raising consumption, so that
the neighbour pays. A grid-map-aware network notices (source document, paragraph [0039]):

* between TANs: both TANs report a new meter and a lost one (:func:`swaps_from_membership_events`),
  or, with global meter ids, two meters' transformers are exchanged (:func:`compare_sightings`);
* across phases: the grid-mapping agents report the meters' phases exchanged;
* within one bus TAN and phase: the meters change positions (see :mod:`.bus`; positions in the
  sightings are compared here too);
* with a location signal: the reported coordinates move (two meters exchanging coordinates is
  a swap).

Only a swap between two premises on the same phase of the same radial TAN, without location
signals, goes unseen (paragraph [0040]).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .anomalies import Anomaly, AnomalyType, Detail
from .data import haversine_m


@dataclass(frozen=True)
class MeterSighting:
    """Where the grid map placed a meter in one period: transformer, phase, bus position (if a
    bus TAN), coordinates (if the meter has a location signal)."""

    meter_id: str
    transformer_id: str
    phase: str = ""
    position: int | None = None
    branch: str = ""
    lat: float | None = None
    lon: float | None = None
    time_s: int = 0

    def __post_init__(self):
        if not self.meter_id:
            raise ValueError("meter_id must be non-empty")


def _index(sightings: Iterable[MeterSighting], name: str) -> dict[str, MeterSighting]:
    out: dict[str, MeterSighting] = {}
    for s in sightings:
        if s.meter_id in out:
            raise ValueError(f"meter {s.meter_id} appears twice in the {name} sightings")
        out[s.meter_id] = s
    return out


def _distance_m(a: MeterSighting, b: MeterSighting) -> float | None:
    """Great-circle distance between two sightings, or None when either lacks a coordinate."""
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return None
    return haversine_m(a.lat, a.lon, b.lat, b.lon)


def _close(a: MeterSighting, b: MeterSighting, tol_m: float) -> bool:
    d = _distance_m(a, b)
    return d is not None and d <= tol_m


def compare_sightings(
    before: Iterable[MeterSighting],
    after: Iterable[MeterSighting],
    *,
    geo_tolerance_m: float = 25.0,
    time_s: int | None = None,
) -> list[Anomaly]:
    """Anomalies between two periods of the grid map.

    * transformer changed: two meters exchanging transformers -> METER_SWAP ``swap_between_tans``;
      a lone move -> METER_SWAP ``moved_between_tans`` (lower confidence: could be a legitimate
      relocation, which a work order explains);
    * phase changed on the same transformer: exchanged pairs -> METER_SWAP ``phase_change``; a
      lone change -> METER_SWAP ``phase_change`` (lower confidence);
    * bus position changed (same transformer, branch and phase, both positions known) ->
      METER_ORDER_CHANGE (exchanged pairs flagged as possible swaps);
    * coordinates moved by more than ``geo_tolerance_m`` -> GEOLOCATION_CHANGE (two meters that
      exchanged coordinates: one anomaly naming both, a possible swap).
    """
    if not geo_tolerance_m > 0:
        raise ValueError(f"geo_tolerance_m must be > 0, got {geo_tolerance_m}")
    b, a = _index(before, "before"), _index(after, "after")
    common = [m for m in b if m in a]
    t_now = time_s if time_s is not None else max([s.time_s for s in a.values()] or [0])
    out: list[Anomaly] = []

    def pairs(cands: list[str], match: Callable[[str, str], bool]) -> Iterator[tuple[str, str | None]]:
        """Yield (m, partner or None), each meter once; ``match(m, o)`` says o mirrors m."""
        done: set[str] = set()
        for m in cands:
            if m in done:
                continue
            partner = next((o for o in cands if o != m and o not in done and match(m, o)), None)
            done.update((m, partner) if partner else (m,))
            yield m, partner

    # transformer moves
    moved = [m for m in common if b[m].transformer_id != a[m].transformer_id]
    for m, o in pairs(
        moved, lambda m, o: b[o].transformer_id == a[m].transformer_id and a[o].transformer_id == b[m].transformer_id
    ):
        if o is not None:
            out.append(
                Anomaly(
                    AnomalyType.METER_SWAP,
                    b[m].transformer_id,
                    (m, o),
                    t_now,
                    0.9,
                    Detail.SWAP_BETWEEN_TANS,
                    location=f"meters {m} and {o} exchanged transformers "
                    f"{b[m].transformer_id} and {b[o].transformer_id}",
                    evidence={
                        m: [b[m].transformer_id, a[m].transformer_id],
                        o: [b[o].transformer_id, a[o].transformer_id],
                    },
                )
            )
        else:
            out.append(
                Anomaly(
                    AnomalyType.METER_SWAP,
                    a[m].transformer_id,
                    (m,),
                    t_now,
                    0.6,
                    Detail.MOVED_BETWEEN_TANS,
                    location=f"meter {m} moved from transformer {b[m].transformer_id} to {a[m].transformer_id}",
                    evidence={"from_transformer": b[m].transformer_id, "to_transformer": a[m].transformer_id},
                )
            )
    same_tan = [m for m in common if b[m].transformer_id == a[m].transformer_id]
    # phase changes
    ph = [m for m in same_tan if b[m].phase and a[m].phase and b[m].phase != a[m].phase]
    for m, o in pairs(
        ph,
        lambda m, o: (
            b[o].transformer_id == b[m].transformer_id and b[o].phase == a[m].phase and a[o].phase == b[m].phase
        ),
    ):
        ids = (m, o) if o else (m,)
        out.append(
            Anomaly(
                AnomalyType.METER_SWAP,
                b[m].transformer_id,
                ids,
                t_now,
                0.85 if o else 0.5,
                Detail.PHASE_CHANGE,
                location=(
                    f"meters {m} and {o} exchanged phases {b[m].phase}/{a[m].phase} on "
                    f"transformer {b[m].transformer_id}"
                    if o
                    else f"meter {m} changed phase {b[m].phase} -> {a[m].phase} on transformer {b[m].transformer_id}"
                ),
                evidence={i: [b[i].phase, a[i].phase] for i in ids},
            )
        )
    # bus position changes
    pos = [
        m
        for m in same_tan
        if b[m].position is not None
        and a[m].position is not None
        and b[m].position != a[m].position
        and b[m].branch == a[m].branch
        and b[m].phase == a[m].phase
    ]
    for m, o in pairs(pos, lambda m, o: b[o].position == a[m].position and a[o].position == b[m].position):
        ids = (m, o) if o else (m,)
        out.append(
            Anomaly(
                AnomalyType.METER_ORDER_CHANGE,
                b[m].transformer_id,
                ids,
                t_now,
                0.8 if o else 0.5,
                Detail.ORDER_CHANGE,
                location=(
                    f"meters {m} and {o} exchanged bus positions: possible meter swap"
                    if o
                    else f"meter {m} moved from bus position {b[m].position} to {a[m].position}"
                ),
                evidence={**{i: [b[i].position, a[i].position] for i in ids}, "possible_swap": bool(o)},
            )
        )
    # geolocation changes
    moved_m = {m: d for m in common if (d := _distance_m(b[m], a[m])) is not None}
    geo = [m for m in common if m in moved_m and moved_m[m] > geo_tolerance_m]
    for m, o in pairs(geo, lambda m, o: _close(a[m], b[o], geo_tolerance_m) and _close(a[o], b[m], geo_tolerance_m)):
        ids = (m, o) if o else (m,)
        dist = moved_m[m]
        out.append(
            Anomaly(
                AnomalyType.GEOLOCATION_CHANGE,
                a[m].transformer_id,
                ids,
                t_now,
                0.9 if o else 0.7,
                Detail.GEOLOCATION,
                location=(
                    f"meters {m} and {o} exchanged locations: possible meter swap"
                    if o
                    else f"meter {m} moved {dist:.0f} m"
                ),
                evidence={
                    i: {
                        "before": [b[i].lat, b[i].lon],
                        "after": [a[i].lat, a[i].lon],
                        "moved_m": moved_m[i],
                    }
                    for i in ids
                },
            )
        )
    return out


@dataclass(frozen=True)
class MembershipEvent:
    """A TAN reported a new meter (``kind="new"``, a PAIRING message) or lost one (``"lost"``, a
    PAIRING_LOSS message)."""

    kind: str
    meter_id: str
    transformer_id: str
    time_s: int

    def __post_init__(self):
        if self.kind not in ("new", "lost"):
            raise ValueError(f"kind must be 'new' or 'lost', got {self.kind!r}")
        if not self.meter_id or not self.transformer_id:
            raise ValueError("meter_id and transformer_id must be non-empty")


def swaps_from_membership_events(events: Iterable[MembershipEvent], *, window_s: int = 6 * 3600) -> list[Anomaly]:
    """Match new and lost meters reported within ``window_s`` of each other.

    * meter A lost by T1 and new on T2 while meter B lost by T2 and new on T1 -> METER_SWAP
      ``swap_between_tans`` naming A and B;
    * meter A lost by T1 and new on T2 alone -> METER_SWAP ``moved_between_tans``;
    * on one TAN, a new meter and a lost one reported together (an exchange whose counterpart
      is outside the network) -> METER_SWAP ``moved_between_tans`` naming both.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    ev = sorted(events, key=lambda e: e.time_s)
    lost = [e for e in ev if e.kind == "lost"]
    new = [e for e in ev if e.kind == "new"]
    moves = []  # (meter, from_t, to_t, time)
    used_new: set[int] = set()
    used_lost: set[int] = set()
    for i, lo in enumerate(lost):
        for j, n in enumerate(new):
            if j in used_new or n.meter_id != lo.meter_id or n.transformer_id == lo.transformer_id:
                continue
            if abs(n.time_s - lo.time_s) <= window_s:
                moves.append((lo.meter_id, lo.transformer_id, n.transformer_id, max(n.time_s, lo.time_s)))
                used_new.add(j)
                used_lost.add(i)
                break
    out: list[Anomaly] = []
    paired: set[int] = set()
    for x, (m, f, t, ts) in enumerate(moves):
        if x in paired:
            continue
        y = next(
            (
                y
                for y, (m2, f2, t2, ts2) in enumerate(moves)
                if y != x and y not in paired and f2 == t and t2 == f and abs(ts2 - ts) <= window_s
            ),
            None,
        )
        if y is not None:
            paired.update((x, y))
            m2 = moves[y][0]
            out.append(
                Anomaly(
                    AnomalyType.METER_SWAP,
                    f,
                    (m, m2),
                    max(ts, moves[y][3]),
                    0.9,
                    Detail.SWAP_BETWEEN_TANS,
                    location=f"meters {m} and {m2} exchanged between transformers {f} and {t}",
                    evidence={m: [f, t], m2: [t, f]},
                )
            )
        else:
            paired.add(x)
            out.append(
                Anomaly(
                    AnomalyType.METER_SWAP,
                    t,
                    (m,),
                    ts,
                    0.6,
                    Detail.MOVED_BETWEEN_TANS,
                    location=f"meter {m} moved from transformer {f} to {t}",
                    evidence={"from_transformer": f, "to_transformer": t},
                )
            )
    # same TAN: a new and a lost meter together
    rest_new = [n for j, n in enumerate(new) if j not in used_new]
    rest_lost = [lo for i, lo in enumerate(lost) if i not in used_lost]
    taken: set[int] = set()
    for lo in rest_lost:
        k = next(
            (
                j
                for j, n in enumerate(rest_new)
                if j not in taken
                and n.transformer_id == lo.transformer_id
                and n.meter_id != lo.meter_id
                and abs(n.time_s - lo.time_s) <= window_s
            ),
            None,
        )
        if k is None:
            continue
        taken.add(k)
        n = rest_new[k]
        out.append(
            Anomaly(
                AnomalyType.METER_SWAP,
                lo.transformer_id,
                (n.meter_id, lo.meter_id),
                max(n.time_s, lo.time_s),
                0.6,
                Detail.MOVED_BETWEEN_TANS,
                location=f"transformer {lo.transformer_id}: new meter {n.meter_id} and lost meter "
                f"{lo.meter_id} reported together (meter exchanged or swapped with another area)",
                evidence={"new": n.meter_id, "lost": lo.meter_id},
            )
        )
    return sorted(out, key=lambda a: a.time_s)
