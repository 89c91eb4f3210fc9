"""Bundle archive: one JSONL file per UTC day, and SigMF annotations of a replayed capture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from receiver.contracts.bundle import Bundle


class BundleArchive:
    """Appends every bundle to ``DIR/bundles-YYYY-MM-DD.jsonl`` (day of the burst's arrival)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, TextIO] = {}
        self.written = 0

    def path_for(self, b: Bundle) -> Path:
        day = b.copies[0].arrival_utc.strftime("%Y-%m-%d")
        return self.dir / f"bundles-{day}.jsonl"

    def write(self, b: Bundle) -> None:
        p = self.path_for(b)
        f = self._files.get(str(p))
        if f is None:
            f = self._files[str(p)] = open(p, "a", encoding="utf-8")
        f.write(b.model_dump_json() + "\n")
        f.flush()
        self.written += 1

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def read_archive(path: str | Path) -> list[Bundle]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(Bundle.model_validate_json(line))
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not a bundle: {e}") from None
    return out


def write_sigmf_annotations(
    meta_path: str | Path, bundles: list[Bundle], out_path: str | Path, burst_samples: int
) -> Path:
    """A copy of the capture's sidecar whose ``annotations`` mark every bundle's burst."""
    meta = json.loads(Path(meta_path).read_text())
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
