"""Bundle archive: one JSONL file per UTC day, and SigMF annotations of a replayed capture.

Every line is written whole or not at all: the line goes to the file in one ``os.write`` on a file
opened ``O_APPEND``; if that fails part way (a full disk: ``ENOSPC``/``EDQUOT``), the file is
truncated back to its size before the write and the error is raised (:class:`ArchiveWriteError`)
for the caller to decide (the receiver holds the bundle and writes it again when there is room).
A tail torn by a crash between two writes, or by a truncate that itself failed, is cut back to
the last complete line when the archive is opened (logged with the number of bytes dropped), so a
restart never appends to half a line.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

from receiver.contracts.bundle import Bundle
from receiver.contracts.sigmf_layout import declare_gla, upgrade_sidecar

log = logging.getLogger("gla.archive")

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class ArchiveWriteError(OSError):
    """A line could not be written; the file was left as it was before the write."""


def repair_torn_tail(path: str | Path) -> int:
    """Cut ``path`` back to its last newline (a line torn by a crash or a full disk). Returns the
    number of bytes dropped (0: the file ended with a whole line, or is empty)."""
    p = Path(path)
    with open(p, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos, keep = size, 0
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            k = chunk.rfind(b"\n")
            if k >= 0:
                keep = pos + k + 1
                break
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    dropped = size - keep
    log.warning(
        "archive: torn last line cut off",
        extra={"event": "archive_torn_tail", "path": str(p), "bytes_dropped": dropped, "size": keep},
    )
    return dropped


class BundleArchive:
    """Appends every bundle to ``DIR/bundles-YYYY-MM-DD.jsonl`` (day of the burst's arrival).

    Opening the archive repairs a torn tail in every file of ``DIR``; :meth:`write` raises
    :class:`ArchiveWriteError` (an ``OSError`` with the errno of the failure) and leaves the file
    whole when a line cannot be written.
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fds: dict[str, int] = {}
        self._torn: dict[str, int] = {}  # path -> size to cut back to before the next write
        self.written = 0
        self.failed = 0
        self.repaired_bytes = 0
        for p in sorted(self.dir.glob("bundles-*.jsonl")):
            self.repaired_bytes += repair_torn_tail(p)

    def path_for(self, b: Bundle) -> Path:
        day = b.copies[0].arrival_utc.strftime("%Y-%m-%d")
        return self.dir / f"bundles-{day}.jsonl"

    def _fd(self, p: Path) -> int:
        fd = self._fds.get(str(p))
        if fd is None:
            if p.exists():
                self.repaired_bytes += repair_torn_tail(p)
            fd = self._fds[str(p)] = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return fd

    def write(self, b: Bundle) -> None:
        """Append one line; whole or not at all (raises :class:`ArchiveWriteError`)."""
        p = self.path_for(b)
        data = (b.model_dump_json() + "\n").encode("utf-8")
        try:
            fd = self._fd(p)
            if str(p) in self._torn:  # an earlier cut-back failed: do it before appending
                os.ftruncate(fd, self._torn[str(p)])
                del self._torn[str(p)]
            before = os.fstat(fd).st_size
        except OSError as e:
            self.failed += 1
            raise ArchiveWriteError(e.errno, f"archive {p}: {e.strerror}") from e
        try:
            n = os.write(fd, data)
            if n != len(data):  # a short write: the disk filled up during it
                raise OSError(errno.ENOSPC, f"short write ({n} of {len(data)} bytes)")
        except OSError as e:
            self.failed += 1
            try:
                os.ftruncate(fd, before)
            except OSError:
                self._torn[str(p)] = before
            raise ArchiveWriteError(e.errno, f"archive {p}: {e.strerror}") from e
        self.written += 1

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass
        self._fds.clear()


def read_archive(path: str | Path) -> list[Bundle]:
    """Every bundle of one archive file, in order. A damaged line (not UTF-8, not JSON, not a
    bundle) raises ValueError naming the file and the line, in one line. Lines are split at
    ``\n`` only, as written (a JSON text never holds a raw newline; other line breaks, such as
    U+2028 in a string, are data)."""
    p = Path(path)
    out = []
    for n, raw in enumerate(p.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{p}:{n}: not a bundle: the line is not UTF-8 (byte {e.start + 1}: {e.reason})") from None
        try:
            out.append(Bundle.model_validate_json(line))
        except ValueError as e:
            why = " ".join(str(e).split())
            raise ValueError(f"{p}:{n}: not a bundle: {why[:300]}") from None
    return out


def write_sigmf_annotations(
    meta_path: str | Path, bundles: list[Bundle], out_path: str | Path, burst_samples: int
) -> Path:
    """A copy of the capture's sidecar whose ``annotations`` mark every bundle's burst.

    The copy is SigMF 1.2 metadata (an old-layout sidecar is upgraded; the gla extension the
    annotations use is declared, optional where the recording did not need it). A copy of a
    SigMF recording's sidecar is marked ``core:metadata_only`` (its ``.sigmf-data`` stays where
    it was)."""
    meta = upgrade_sidecar(json.loads(Path(meta_path).read_text()))
    glob = meta.setdefault("global", {})
    declare_gla(glob, optional=True)
    if "core:dataset" not in glob:
        glob["core:metadata_only"] = True
    ann: list[dict[str, Any]] = []
    for b in bundles:
        c = b.copies[0]
        half_bw = 450.0
        ann.append(
            {
                "core:sample_start": int(c.start_sample),
                "core:sample_count": int(burst_samples),
                "core:freq_lower_edge": b.fc_hz - half_bw,
                "core:freq_upper_edge": b.fc_hz + half_bw,
                "core:label": f"{b.kind or 'unknown'} hub {b.hub_id}" if b.crc_ok else "crc failed",
                "gla:bundle_id": b.bundle_id,
                "gla:channel": b.channel,
                "gla:code": b.code,
                "gla:inferred": b.inferred.model_dump() if b.inferred else None,
            }
        )
    meta["annotations"] = sorted(ann, key=lambda a: a["core:sample_start"])
    out = Path(out_path)
    out.write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return out
