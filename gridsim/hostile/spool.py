"""Spool and archive on disk: files torn or spoilt as a power cut, a full disk or bit rot leaves
them, then opened again as a restarted receiver opens them.

The spool (:class:`receiver.spool.Spool`, SQLite in WAL mode, ``synchronous=FULL``) is snapshot
while open after :data:`N` bundles were put one by one, the first :data:`CHECKPOINTED` folded into
the main file (the WAL's size noted after each later put returned: what was durable then).
:func:`check_wal_torn` cuts the WAL at a random offset at or beyond the size it had when bundle
*k* was acknowledged: a restarted spool must hold bundles 0..*k* (what a power cut may leave,
since every acknowledged commit was fsynced). :func:`check_spoilt` spoils the main file (cut,
overwritten, replaced by garbage): the spool must either open and hold every acknowledged bundle
or refuse with the spool's error (or OSError/ValueError) naming the file; never a raw ``sqlite3``
error, never an empty spool in its place.

The archive (:class:`receiver.archive.BundleArchive`, JSON lines) is cut at a random offset (a
torn last line), a restarted archive appends a bundle, and :func:`check_archive_torn` reads it
back: every whole line before the cut and the new bundle must read.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

from receiver.archive import BundleArchive, read_archive
from receiver.contracts.bundle import Bundle

from . import Problem
from .http import BASE

N = 20
CHECKPOINTED = 10  #: the first bundles are folded into the main file, the others only in the WAL
SPOOL = "spool.sqlite"


def bundle(i: int) -> dict:
    b = dict(BASE[i % len(BASE)])
    b["bundle_id"] = f"{i:032x}"
    return b


@cache
def spool_template() -> tuple[Path, list[int]]:
    """A spool snapshot taken while open (main file and WAL, as a power cut leaves them; no shm)
    after N puts, the first CHECKPOINTED of them checkpointed into the main file, and the WAL's
    size when each put returned."""
    from receiver.spool import Spool

    d = Path(tempfile.mkdtemp(prefix="gla-hostile-spool-"))
    live = d / "live"
    s = Spool(live / SPOOL)
    sizes = []
    for i in range(N):
        if i == CHECKPOINTED:
            s.checkpoint()
        s.put(bundle(i))
        sizes.append((live / f"{SPOOL}-wal").stat().st_size)
    snap = d / "snap"
    snap.mkdir()
    for name in (SPOOL, f"{SPOOL}-wal"):
        shutil.copy(live / name, snap / name)
    s.close()
    return snap, sizes


def _open_and_count(d: Path) -> tuple[set[str] | None, list[Problem]]:
    """Open the spool in ``d`` as a restart does; the bundle ids it holds, or the problem."""
    from receiver.spool import Spool, SpoolError

    try:
        s = Spool(d / SPOOL)
        try:
            ids = set(s.ids())
            s.due(limit=N + 10)  # the delivery loop's read: every body
            s.put(bundle(N + 1))  # and it accepts new bundles
        finally:
            s.close()
        return ids, []
    except (SpoolError, OSError, ValueError) as e:
        if SPOOL not in str(e):
            return None, [Problem("unclear_error", f"{type(e).__name__} does not name the file: {e}")]
        return None, []
    except sqlite3.Error as e:
        return None, [Problem("crash", f"raw {type(e).__module__}.{type(e).__name__}: {e}")]
    except Exception as e:  # noqa: BLE001
        return None, [Problem("crash", f"{type(e).__name__}: {e}")]


@dataclass
class Tear:
    file: str
    op: str  #: "cut", "put" (overwrite) or "all" (replace)
    at: int
    data: bytes = b""
    acked: int = 0  #: bundles acknowledged before the tear (the property's count)

    def __repr__(self) -> str:
        return f"Tear({self.file} {self.op} at {self.at}, {len(self.data)} bytes, {self.acked} acknowledged)"


def _apply(t: Tear, d: Path) -> None:
    p = d / t.file
    b = bytearray(p.read_bytes())
    if t.op == "cut":
        del b[t.at :]
    elif t.op == "put":
        b[t.at : t.at + len(t.data)] = t.data
    else:
        b = bytearray(t.data)
    p.write_bytes(bytes(b))


@st.composite
def wal_tears(draw) -> Tear:
    """A WAL cut at or after where it ended when bundle k's put returned."""
    _, sizes = spool_template()
    k = draw(st.integers(CHECKPOINTED, N - 1))
    at = draw(st.integers(sizes[k], sizes[-1]))
    return Tear(f"{SPOOL}-wal", "cut", at, acked=k + 1)


@st.composite
def spoilt_files(draw) -> Tear:
    snap, _ = spool_template()
    f = SPOOL  # a WAL spoilt inside its frames loses them silently (SQLite's checksums): not testable
    size = (snap / f).stat().st_size
    op = draw(st.sampled_from(["cut", "put", "all"]))
    if op == "cut":
        return Tear(f, op, draw(st.integers(0, size - 1)), acked=N)
    if op == "put":
        return Tear(f, op, draw(st.integers(0, size - 1)), draw(st.binary(min_size=1, max_size=512)), acked=N)
    return Tear(f, op, 0, draw(st.binary(max_size=4096)), acked=N)


def _run(t: Tear, spoilt: bool) -> list[Problem]:
    snap, _ = spool_template()
    with tempfile.TemporaryDirectory(prefix="gla-hostile-") as tmp:
        d = Path(tmp)
        for f in snap.iterdir():
            shutil.copy(f, d / f.name)
        _apply(t, d)
        ids, found = _open_and_count(d)
        if found:
            return found
        want = {bundle(i)["bundle_id"] for i in range(t.acked)}
        if ids is None:
            if not spoilt:
                return [Problem("lost", "the spool refused to open after a torn WAL")]
            return []
        if not want <= ids:
            return [Problem("lost", f"{len(want - ids)} of {len(want)} acknowledged bundles gone")]
        return []


def check_wal_torn(t: Tear) -> list[Problem]:
    return _run(t, spoilt=False)


def check_spoilt(t: Tear) -> list[Problem]:
    return _run(t, spoilt=True)


# -- the archive ----------------------------------------------------------------------------------
@cache
def archive_template() -> bytes:
    """An archive day file of N bundles."""
    d = Path(tempfile.mkdtemp(prefix="gla-hostile-archive-"))
    a = BundleArchive(d)
    for i in range(N):
        a.write(Bundle.model_validate(bundle(i)))
    a.close()
    (p,) = d.iterdir()
    return p.read_bytes()


@st.composite
def archive_cuts(draw) -> int:
    data = archive_template()
    return draw(st.integers(0, len(data)))


def check_archive_torn(cut: int) -> list[Problem]:
    """The archive cut at ``cut`` bytes, reopened, one more bundle written: every whole line
    before the cut and the new bundle read back."""
    data = archive_template()
    whole = data[:cut].count(b"\n")
    new = Bundle.model_validate(bundle(N + 1))
    with tempfile.TemporaryDirectory(prefix="gla-hostile-") as tmp:
        a = BundleArchive(tmp)
        p = a.path_for(new)
        p.write_bytes(data[:cut])
        try:
            a.write(new)
            a.close()
            got = read_archive(p)
        except ValueError as e:
            return [Problem("lost", f"the archive does not read after a restart: {e}")]
        except Exception as e:  # noqa: BLE001
            return [Problem("crash", f"{type(e).__name__}: {e}")]
    ids = [b.bundle_id for b in got]
    want = [bundle(i)["bundle_id"] for i in range(whole)] + [new.bundle_id]
    if ids != want:
        return [Problem("lost", f"read back {len(ids)} bundles, expected {len(want)} (whole lines + the new one)")]
    return []


@dataclass
class GarbageLine:
    line: int  #: 0-based line replaced
    data: bytes

    def __repr__(self) -> str:
        return f"GarbageLine(line {self.line + 1} of the archive = {self.data[:80]!r})"


def _one_line(b: bytes) -> bool:
    t = b.decode("utf-8", "replace")
    return bool(t.strip()) and len(t.splitlines()) == 1


@st.composite
def archive_garbage(draw, utf8: bool) -> GarbageLine:
    """A line replaced by garbage: valid UTF-8 text (``utf8``) or bytes that are not UTF-8."""
    if utf8:
        data = draw(st.text(min_size=1, max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
    else:
        data = draw(st.binary(min_size=1, max_size=300)) + b"\xff"  # never UTF-8
    if not _one_line(data):
        data = b"x" + data.replace(b"\n", b"").replace(b"\r", b"")
    if not _one_line(data):
        data = b"x{" + (b"\xff" if not utf8 else b"")
    return GarbageLine(draw(st.integers(0, N - 1)), data)


def check_archive_garbage(g: GarbageLine) -> list[Problem]:
    """An archive with a garbage line: read_archive refuses with a one-line ValueError naming the
    file and the line (``name:line:``)."""
    lines = archive_template().split(b"\n")
    lines[g.line] = g.data
    data = b"\n".join(lines)
    with tempfile.TemporaryDirectory(prefix="gla-hostile-") as tmp:
        p = Path(tmp) / "bundles-2026-11-22.jsonl"
        p.write_bytes(data)
        try:
            read_archive(p)
        except ValueError as e:
            if f"{p.name}:{g.line + 1}:" not in str(e) or "\n" in str(e):
                return [
                    Problem("unclear_error", f"the error is not one line naming the file and line {g.line + 1}: {e}")
                ]
            return []
        except Exception as e:  # noqa: BLE001
            return [Problem("crash", f"{type(e).__name__}: {e}")]
    return [Problem("not_refused", "a garbage line was read as a bundle")]
