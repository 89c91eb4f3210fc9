"""``gla replay CAPTURE --post URL``: a capture into a Computing Platform in one step.

What the command does around the decoding (:mod:`receiver.replay`):

1. **The ``--out`` folder** (:func:`check_out_folder`). It records what it holds in
   ``replay.json`` (the capture's sidecar and audio, the receiver and substation ids, the
   duration decoded, the platform posted to). Reused for the *same* replay, it resumes: a capture
   decoded to the end is not decoded again, the bundles still in its spool are posted; a decode
   that did not finish is done again, its own earlier archive replaced (no bundle written twice).
   A folder holding another replay, or files this command did not write, is refused with the
   reason, so that nothing of an earlier run is mixed up or lost.
2. **Credentials** (:func:`receiver_token`). ``--token``/``--token-file`` name a receiver the
   platform knows. Without them, the platform's admin credential (``--admin-token-file``,
   ``$GLA_ADMIN_TOKEN``, ``$GLA_ADMIN_TOKEN_FILE``, or ``./admin-token``, the file ``gla
   platform`` writes beside its SQLite database on first start) registers ``--receiver-id`` for
   ``--substation-id`` (or issues it a new token if it exists).
3. **``--import-truth``** (:func:`import_truth`): the hubs of a simulated capture, with their keys,
   from ``STEM.truth.json`` into the platform's Inventory, so their frames can be decoded.
4. **The summary** (:func:`summary`): one line from the spool's record of the platform's answers:
   delivered (by the platform's verdict), refused (the frame rejected, with the reasons, or the
   bundle refused: 409/422), left undelivered. A bundle refused because its hub had no key yet is
   posted again by the next run: the platform decodes such frames again when the key arrives
   (an import), and the re-post learns the new verdict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when posting: a plain replay starts without it
    import httpx

MANIFEST = "replay.json"
SPOOL = "spool.sqlite"
WRITTEN = ("bundles", SPOOL, SPOOL + "-wal", SPOOL + "-shm", MANIFEST)  # what a replay writes in --out
ADMIN_FILE = "admin-token"  # the name the platform gives its admin credential file


class PostSetupError(Exception):
    """What was given cannot work (a folder holding another replay, no credential, a bad truth
    file): one line, exit status 2."""


class PlatformUnavailable(Exception):
    """The platform could not be reached or answered an error while being set up: exit status 1."""


# -- the --out folder -------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def identity(meta_path: str | Path, audio_path: str | Path, **params: Any) -> dict:
    """What makes two replays the same: the sidecar's content, the audio file's size and the
    parameters that change the bundles (receiver and substation ids, duration)."""
    meta, audio = Path(meta_path).resolve(), Path(audio_path).resolve()
    return {
        "capture": str(meta),
        "sidecar_sha256": _sha256(meta),
        "audio_bytes": audio.stat().st_size if audio.is_file() else None,  # a missing one: named by the reader
        **params,
    }


@dataclass
class OutFolder:
    path: Path
    ident: dict
    post_url: str | None
    #: "new" (empty folder), "redo" (decode again, replacing this replay's earlier archive),
    #: "resume" (decoded before to the end: only post what is left)
    mode: str = "new"
    previous: dict = field(default_factory=dict)

    def start(self) -> None:
        """Record the replay before decoding (``decoded: false``); on ``redo`` remove what the
        earlier, unfinished or repeated decode wrote into the folder (the spool is kept)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.mode == "redo":
            shutil.rmtree(self.path / "bundles", ignore_errors=True)
            for f in self.path.glob("*.annotated.sigmf-meta"):
                f.unlink()
        self._write(decoded=self.mode == "resume")

    def finished(self, complete: bool) -> None:
        self._write(decoded=complete)

    def _write(self, decoded: bool) -> None:
        posted = self.post_url or self.previous.get("post_url")
        data = {"format": "gla-replay/1", "identity": self.ident, "decoded": decoded, "post_url": posted}
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.path / MANIFEST)


def check_out_folder(out: Path, ident: dict, post_url: str | None) -> OutFolder:
    """How a replay uses ``out`` (see the module docstring); raises :class:`PostSetupError` for a
    folder it will not use, naming why."""
    f = OutFolder(out, ident, post_url)
    if out.exists() and not out.is_dir():
        raise PostSetupError(f"--out {out}: exists and is not a folder")
    manifest = out / MANIFEST
    if not manifest.exists():
        ours = [n for n in WRITTEN if (out / n).exists()] + [p.name for p in out.glob("*.annotated.sigmf-meta")]
        if ours:
            raise PostSetupError(
                f"--out {out}: holds {', '.join(sorted(ours))} but no {MANIFEST} saying which replay wrote them; "
                "give another --out folder, or remove them"
            )
        return f
    try:
        prev = json.loads(manifest.read_text())
        old = prev["identity"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PostSetupError(f"--out {out}: cannot read {manifest} ({e}); give another --out folder") from None
    differs = [k for k in sorted(set(old) | set(ident)) if old.get(k) != ident.get(k)]
    if differs:
        was = ", ".join(f"{k} {old.get(k)!r} (now {ident.get(k)!r})" for k in differs)
        raise PostSetupError(
            f"--out {out}: holds another replay ({was}); give another --out folder, or remove it to start over"
        )
    posted = prev.get("post_url")
    if post_url and posted and posted.rstrip("/") != post_url.rstrip("/"):
        raise PostSetupError(
            f"--out {out}: its bundles were posted to {posted}, not {post_url}; give another --out folder "
            "for another platform"
        )
    f.previous = prev
    has_spool = (out / SPOOL).exists()
    f.mode = "resume" if prev.get("decoded") and post_url and has_spool else "redo"
    return f


# -- credentials and the truth ----------------------------------------------------------------------
def admin_token(admin_token_file: str | None) -> tuple[str, str] | None:
    """The platform's admin credential and where it came from, or None when there is none."""
    if admin_token_file:
        return _read_token(Path(admin_token_file), "--admin-token-file"), f"--admin-token-file {admin_token_file}"
    if os.environ.get("GLA_ADMIN_TOKEN", "").strip():
        return os.environ["GLA_ADMIN_TOKEN"].strip(), "$GLA_ADMIN_TOKEN"
    env_file = os.environ.get("GLA_ADMIN_TOKEN_FILE")
    if env_file:
        return _read_token(Path(env_file), "$GLA_ADMIN_TOKEN_FILE"), f"$GLA_ADMIN_TOKEN_FILE {env_file}"
    if Path(ADMIN_FILE).is_file():
        return _read_token(Path(ADMIN_FILE), "./" + ADMIN_FILE), f"./{ADMIN_FILE}"
    return None


def _read_token(path: Path, what: str) -> str:
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise PostSetupError(f"{what} {path}: cannot read it ({e})") from None
    if not token:
        raise PostSetupError(f"{what} {path}: empty")
    return token


def _client(url: str, token: str) -> httpx.Client:
    import httpx

    return httpx.Client(base_url=url.rstrip("/"), timeout=30.0, headers={"Authorization": f"Bearer {token}"})


def _call(c: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    import httpx

    try:
        return c.request(method, path, **kw)
    except httpx.HTTPError as e:
        raise PlatformUnavailable(f"cannot reach the platform at {c.base_url}: {type(e).__name__}: {e}") from None


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json().get("detail", r.text)
    except (ValueError, AttributeError):
        d = r.text
    return (d if isinstance(d, str) else json.dumps(d))[:300]


def _refused_admin(r: httpx.Response, source: str, url: str) -> PostSetupError:
    return PostSetupError(
        f"the platform at {url} refused the admin credential from {source} (HTTP {r.status_code}: {_detail(r)}); "
        "give that platform's admin-token file with --admin-token-file"
    )


def receiver_token(url: str, admin: tuple[str, str], receiver_id: str, substation_id: str) -> str:
    """Register ``receiver_id`` for ``substation_id`` with the admin credential (a new token if
    it is registered already, for the same substation) and return its token."""
    token, source = admin
    with _client(url, token) as c:
        r = _call(c, "POST", "/api/v1/receivers", json={"receiver_id": receiver_id, "substation_id": substation_id})
        if r.status_code == 409:
            got = _call(c, "GET", f"/api/v1/receivers/{receiver_id}")
            if got.status_code == 200 and got.json().get("substation_id") != substation_id:
                raise PostSetupError(
                    f"--receiver-id {receiver_id}: registered on {url} for substation "
                    f"{got.json().get('substation_id')}, not {substation_id}; give another --receiver-id"
                )
            r = _call(c, "POST", f"/api/v1/receivers/{receiver_id}/rotate")
        if r.status_code in (401, 403):
            raise _refused_admin(r, source, url)
        if r.status_code >= 400:
            raise PlatformUnavailable(f"{url}: registering receiver {receiver_id}: HTTP {r.status_code}: {_detail(r)}")
        return str(r.json()["token"])


def truth_path(meta_path: str | Path) -> Path:
    """``STEM.truth.json`` beside the capture's sidecar ``STEM.sigmf-meta``."""
    meta = Path(meta_path)
    return meta.with_name(meta.name.removesuffix(".sigmf-meta") + ".truth.json")


def import_truth(url: str, admin: tuple[str, str], path: Path, substation_id: str) -> dict:
    """Import the simulated capture's hubs and keys (``STEM.truth.json``); returns the counts."""
    try:
        truth = json.loads(path.read_text())
        body = {"capture": truth["capture"]}
    except FileNotFoundError:
        raise PostSetupError(
            f"--import-truth: no {path} beside the capture (only `gla simulate` writes one; import a real "
            "substation's hubs and keys with POST /api/v1/import/json or /api/v1/import/csv)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PostSetupError(f"--import-truth {path}: not a simulator truth file ({type(e).__name__}: {e})") from None
    token, source = admin
    with _client(url, token) as c:
        r = _call(c, "POST", "/api/v1/import/json", params={"substation_id": substation_id}, json=body)
    if r.status_code in (401, 403):
        raise _refused_admin(r, source, url)
    if r.status_code == 422:
        raise PostSetupError(f"--import-truth {path}: the platform refused it: {_detail(r)}")
    if r.status_code >= 400:
        raise PlatformUnavailable(f"{url}: importing {path}: HTTP {r.status_code}: {_detail(r)}")
    return dict(r.json().get("counts", {}))


# -- the summary ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    delivered: dict[str, int] = field(default_factory=dict)  #: by the platform's verdict (accepted, ...)
    refused: dict[str, int] = field(default_factory=dict)  #: by reason (unknown_hub, auth, http_409 ...)
    undelivered: int = 0
    unknown_hubs: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.undelivered

    def line(self, url: str) -> str:
        def parts(d: dict[str, int]) -> str:
            return f" ({', '.join(f'{k} {v}' for k, v in sorted(d.items()))})" if d else ""

        return (
            f"posted to {url}: delivered {sum(self.delivered.values())}{parts(self.delivered)}, "
            f"refused {sum(self.refused.values())}{parts(self.refused)}, left undelivered {self.undelivered}"
        )


def unknown_hub_ids(spool) -> list[str]:
    """Bundles the platform refused because it had no key for their hub (posted again by a run)."""
    out = []
    for row in _all_rows(spool, "delivered"):
        v = _verdict(row.get("response"))
        if v.get("status") == "rejected" and v.get("reason") == "unknown_hub":
            out.append(row["bundle_id"])
    return out


def _all_rows(spool, status: str | None = None) -> list[dict]:
    rows: list[dict] = []
    step = 1000
    while True:
        chunk = spool.rows(status, limit=step, offset=len(rows))
        rows += chunk
        if len(chunk) < step:
            return rows


def _verdict(response: str | None) -> dict:
    try:
        v = json.loads(response) if response else {}
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def summary(spool) -> Outcome:
    """What became of every bundle in the spool, from the platform's answers it recorded."""
    o = Outcome()
    for row in _all_rows(spool):
        st = row["status"]
        if st == "delivered" and row.get("http_status") == 409:
            o.refused["conflict"] = o.refused.get("conflict", 0) + 1
        elif st == "delivered":
            v = _verdict(row.get("response"))
            status = v.get("status") or "delivered"
            if status == "rejected":
                reason = v.get("reason") or "rejected"
                o.refused[reason] = o.refused.get(reason, 0) + 1
                if reason == "unknown_hub" and v.get("hub_id") is not None:
                    o.unknown_hubs.add(int(v["hub_id"]))
            else:
                o.delivered[status] = o.delivered.get(status, 0) + 1
        elif st == "rejected":
            o.refused["schema"] = o.refused.get("schema", 0) + 1
        else:
            o.undelivered += 1
    return o


# -- the command ------------------------------------------------------------------------------------
def command(args: argparse.Namespace) -> int:
    """``gla replay``: decode the capture; with ``--post``, set up the platform and post (module docstring)."""
    from receiver import timings
    from receiver.contracts.capture import check_sha256, read_capture_meta
    from receiver.replay import print_replay_summary, replay

    timings.mark("imports")

    meta = read_capture_meta(args.capture)
    if args.post and not args.post.startswith(("http://", "https://")):  # refuse a bad --post before decoding
        raise PostSetupError(f"--post {args.post}: not an http:// or https:// URL")
    if args.import_truth and not args.post:
        raise PostSetupError("--import-truth: needs --post URL (the platform to import the hubs into)")
    out = Path(args.out) if args.out else (Path("out") / Path(meta.meta_path).name.removesuffix(".sigmf-meta"))
    folder = None
    if args.out or args.post:
        ident = identity(
            meta.meta_path,
            meta.audio_path,
            receiver_id=args.receiver_id,
            substation_id=args.substation_id,
            duration_s=args.duration,
        )
        folder = check_out_folder(out, ident, args.post)
    if args.verify:
        digest = check_sha256(meta)
        algo, key = ("SHA-256", "gla:sha256") if meta.sha256 else ("SHA-512", "core:sha512")  # a SigMF recording's
        print(f"{meta.audio_path}: verified, {algo} {digest} matches the sidecar's {key}", flush=True)
    token = args.token
    if args.token_file:
        token = _read_token(Path(args.token_file), "--token-file")
    if args.post:
        admin = admin_token(args.admin_token_file)
        if admin is None and (token is None or args.import_truth):
            need = "to import the truth" if token else "to register the receiver"
            raise PostSetupError(
                f"--post {args.post}: no admin credential {need}: give --admin-token-file FILE (the admin-token "
                "the platform wrote beside its database), or set GLA_ADMIN_TOKEN"
                + ("" if args.import_truth else "; or give --token-file FILE of a receiver the platform knows")
            )
        if args.import_truth and admin is not None:
            counts = import_truth(args.post, admin, truth_path(meta.meta_path), args.substation_id)
            shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            print(f"imported {truth_path(meta.meta_path)} into {args.post}: {shown or 'nothing new'}", flush=True)
        if token is None and admin is not None:
            token = receiver_token(args.post, admin, args.receiver_id, args.substation_id)
    spool = None
    if folder is not None:
        folder.start()
    if args.post:  # each bundle is durable in the spool as it is made, before its archive line
        from receiver.spool import Spool

        spool = Spool(out / SPOOL)
    res = None
    if folder is not None and folder.mode == "resume":
        print(f"{out}: {meta.meta_path} was decoded there before; posting what is left in {out / SPOOL}")
    else:
        res = replay(
            args.capture,
            workers=args.workers,
            out_dir=out if folder is not None else None,
            receiver_id=args.receiver_id,
            substation_id=args.substation_id,
            progress=not args.no_progress,
            duration_s=args.duration,
            on_bundle=None if spool is None else spool.put,
        )
        print_replay_summary(res, limit=args.show)
        if folder is not None:
            folder.finished(res.error is None)
    status = 0
    if spool is not None:
        status = _post_spool(args, spool, token)
    if res is not None and res.error:
        print(f"gla replay: error: {res.error}", file=sys.stderr)
        status = 1
    return status


def _post_spool(args: argparse.Namespace, spool, token: str | None) -> int:
    """Post what the spool holds (again: the bundles refused for an unknown hub, which the
    platform may decode now), print the one-line summary; 1 if anything was refused or is left."""
    from receiver.delivery import deliver_all

    if not args.verbose:  # the summary says it all, in one line
        logging.getLogger("gla.delivery").setLevel(logging.CRITICAL)
    try:
        spool.requeue(unknown_hub_ids(spool))
        posted = deliver_all(spool, args.post, token, progress=not args.no_progress, max_wait_s=args.post_wait)
        o = summary(spool)
    finally:
        spool.close()
    print(o.line(args.post), flush=True)
    if o.ok:
        return 0
    where = f"{spool.path}"
    if o.undelivered:
        why = (
            posted.get("halted")
            or posted.get("last_error")
            or f"the platform did not take them in {args.post_wait:g} s"
        )
        hint = ""
        if "belongs to receiver" in str(why):
            hint = " (give --receiver-id of that token's receiver, or no --token to register this one)"
        print(
            f"gla replay: error: {o.undelivered} bundles left undelivered: {why}{hint}; they stay in {where} "
            "and a run with the same --out posts them",
            file=sys.stderr,
        )
    if o.refused.get("unknown_hub"):
        hubs = ", ".join(str(h) for h in sorted(o.unknown_hubs)[:8]) + (" ..." if len(o.unknown_hubs) > 8 else "")
        print(
            f"gla replay: error: {o.refused['unknown_hub']} bundles refused: the platform has no key for hub(s) "
            f"{hubs}; add --import-truth (simulated captures) or import the hubs' keys, then run the same "
            "command again: the platform decodes them once the key is there",
            file=sys.stderr,
        )
    others = {k: v for k, v in o.refused.items() if k != "unknown_hub"}
    if others:
        print(
            f"gla replay: error: {sum(others.values())} bundles refused by the platform "
            f"({', '.join(f'{k} {v}' for k, v in sorted(others.items()))}); see GET /api/v1/rejections",
            file=sys.stderr,
        )
    return 1
