"""Every command and example of README.md, run as written.

The README is read block by block: fenced ``python`` blocks are executed, every other fenced block
is shell, one command a line, and is run with ``bash -c`` exactly as written. The one
substitution: a leading ``gla`` is this interpreter's ``python -m receiver.cli`` (the tree under
test, not whatever ``gla`` is on the PATH).

Each README section (a heading and its text) runs in its own copy of the clone: a temporary
folder holding ``captures/`` copied and every other top-level entry as a symbolic link, so that
the commands' outputs (``out/``, ``gla-platform.db``, ...) land there, and a command that writes
into the clone itself fails the test (``git status`` before and after). Commands run in order, as
a reader following the section would:

- ``gla platform`` and ``gla receive`` serve until stopped: each is started, must answer
  ``/healthz``, stays up for the rest of its section (the replay that posts to it, the dashboard's
  address in the text) and is stopped at the end. ``gla receive`` gets its data folder, input
  endpoint and HTTP address from ``GLA_RECEIVER_*`` variables (the configuration file is the
  shipped one, unchanged). A port the README names that is taken on this host is replaced by a
  free one throughout its section (with a warning).
- ``bash scripts/...`` (the set-up commands and the guard rails) are run by CI itself: the test
  asserts that ``.ci/run`` runs each, as written.
- Every ``http://127.0.0.1:PORT/...`` address in a section's text whose port is one of its
  servers must answer (status < 400) once the section's commands have run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
GLA = shlex.join([sys.executable, "-m", "receiver.cli"])
SHELL_LANGS = {"", "sh", "bash", "shell", "console"}
SERVERS = ("gla platform", "gla receive")
#: Top-level entries copied into each section's folder rather than linked (commands write there).
COPIED = ("captures",)
COMMAND_TIMEOUT_S = 1800


@dataclass
class Block:
    section: str
    lang: str
    text: str
    line: int  # of the opening fence, 1-based


@dataclass
class Section:
    title: str
    text: str = ""
    blocks: list[Block] = field(default_factory=list)


def parse(markdown: str) -> list[Section]:
    """The README's sections in order (the part before the first heading is called "top"), each
    with its text and fenced blocks."""
    sections = [Section("top")]
    fence: tuple[str, int, list[str]] | None = None
    for n, line in enumerate(markdown.splitlines(), 1):
        m = re.match(r"^(```+|~~~+)\s*([\w+-]*)\s*$", line)
        if fence is None and m:
            fence = (m.group(2).lower(), n, [])
            continue
        if fence is not None:
            if line.strip() == "```" or line.strip() == "~~~":
                lang, start, body = fence
                sections[-1].blocks.append(Block(sections[-1].title, lang, "\n".join(body) + "\n", start))
                fence = None
            else:
                fence[2].append(line)
            continue
        h = re.match(r"^#{1,6}\s+(.*\S)\s*$", line)
        if h:
            sections.append(Section(h.group(1)))
        sections[-1].text += line + "\n"
    assert fence is None, f"README.md:{fence[1]}: a fenced block is never closed"
    return sections


def commands(block: Block) -> list[str]:
    """The shell block's commands: one a line (a trailing backslash continues it), blank lines and
    whole-line comments left out; a comment after a command stays (bash ignores it)."""
    out, cur = [], ""
    for line in block.text.splitlines():
        cur += line
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        if cur.strip() and not cur.lstrip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def kind(cmd: str) -> str:
    if cmd.startswith("bash scripts/"):
        return "ci"
    if any(cmd == s or cmd.startswith(s + " ") for s in SERVERS):
        return "server"
    return "run"


SECTIONS = parse(README.read_text())
SHELL_SECTIONS = [s for s in SECTIONS if any(b.lang in SHELL_LANGS for b in s.blocks)]
#: The sections with a command the test runs (not only CI's scripts).
RUN_SECTIONS = [
    s for s in SHELL_SECTIONS if any(kind(c) != "ci" for b in s.blocks if b.lang in SHELL_LANGS for c in commands(b))
]
PYTHON_BLOCKS = [b for s in SECTIONS for b in s.blocks if b.lang == "python"]


def _ci_lines() -> set[str]:
    return {line.strip() for line in CI_RUN.read_text().splitlines() if line.strip() and not line.startswith("#")}


# --- the README as a whole --------------------------------------------------------------------------


def test_every_fenced_block_is_shell_or_python_and_each_kind_is_there():
    """A block in another language would be skipped: refuse it, so that nothing escapes the run."""
    langs = {(b.lang, b.line) for s in SECTIONS for b in s.blocks}
    assert not {x for x in langs if x[0] not in SHELL_LANGS | {"python"}}, "fenced block of an unknown kind"
    kinds = {kind(c) for s in SHELL_SECTIONS for b in s.blocks if b.lang in SHELL_LANGS for c in commands(b)}
    assert kinds == {"ci", "server", "run"}
    assert len(PYTHON_BLOCKS) >= 2


def test_the_two_setup_commands_come_first_and_ci_runs_every_script_as_written():
    first = next(b for s in SECTIONS for b in s.blocks)  # under the title, before anything else
    assert commands(first) == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = [c for s in SECTIONS for b in s.blocks if b.lang in SHELL_LANGS for c in commands(b) if kind(c) == "ci"]
    runs = _ci_lines()

    def run_by_ci(cmd: str) -> bool:  # a line that is the command, or the command then `||`, `&&`, `;`
        return any(re.fullmatch(re.escape(cmd) + r"(\s*(\|\||&&|;).*)?", line) for line in runs)

    missing = [c for c in ci if not run_by_ci(c.split("#")[0].strip())]
    assert missing == [], f".ci/run does not run these README commands as written: {missing}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    h = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", h).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(s.title) for s in parse(path.read_text()) if s.title != "top"}


def test_every_link_of_the_readme_leads_somewhere():
    """Relative links name a file of the clone; their #anchors (and the README's own) a heading."""
    text = "".join(s.text for s in SECTIONS)  # outside the fenced blocks
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        f = ROOT / path if path else README
        if not f.exists():
            bad.append(f"{target}: no such file")
        elif anchor and f.suffix == ".md" and anchor not in _anchors(f):
            bad.append(f"{target}: no heading #{anchor}")
    assert bad == []


# --- running them -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def clone_for(tmp_path: Path) -> Path:
    """A folder standing for a fresh clone: the captures copied, everything else linked."""
    work = tmp_path / "clone"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name.startswith(".") or entry.name in ("out", "gla-platform.db", "admin-token"):
            continue
        if entry.name in COPIED:
            shutil.copytree(entry, work / entry.name)
        else:
            (work / entry.name).symlink_to(entry)
    return work


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLA_")}
    env["PWD"] = str(work)
    return env


def _git_status() -> str:
    r = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    )
    return r.stdout if r.returncode == 0 else ""


def _get(url: str, timeout_s: float = 10) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Runner:
    """Runs one section's commands in ``work``; ``close`` stops the servers it started."""

    def __init__(self, work: Path, text: str) -> None:
        self.work, self.text = work, text
        self.env = _env(work)
        self.ports: dict[int, int] = {}  # port named in the README -> port used
        self.servers: list[tuple[str, subprocess.Popen, int]] = []  # command, process, port
        self.log = work.parent / "server-logs"
        self.log.mkdir(exist_ok=True)

    def _port(self, named: int) -> int:
        if named not in self.ports:
            used = named
            if _port_taken(named):
                used = _free_port()
                warnings.warn(f"port {named} is taken on this host: the README's section runs on {used}", stacklevel=1)
            self.ports[named] = used
        return self.ports[named]

    def _subst(self, cmd: str) -> str:
        for named, used in self.ports.items():
            cmd = re.sub(rf"(?<=:){named}\b|(?<=--port ){named}\b", str(used), cmd)
        return re.sub(r"^gla(?=\s|$)", lambda _: GLA, cmd)

    def run(self, cmd: str) -> None:
        if kind(cmd) == "server":
            return self.serve(cmd)
        for m in re.finditer(r"127\.0\.0\.1:(\d+)", cmd):
            self._port(int(m.group(1)))
        t0 = time.monotonic()
        r = subprocess.run(
            ["bash", "-c", self._subst(cmd)],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, (
            f"README command `{cmd}` exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        )
        print(f"[readme] {time.monotonic() - t0:6.1f} s  {cmd}\n{r.stdout[-600:]}")

    def serve(self, cmd: str) -> None:
        env = dict(self.env)
        if cmd.startswith("gla platform"):
            m = re.search(r"--port[ =](\d+)", cmd)
            named = int(m.group(1)) if m else 8000
            port = self._port(named)
            if not m and port != named:  # the default port taken on this host
                cmd = re.sub(r"^gla platform", f"gla platform --port {port}", cmd)
            run = self._subst(cmd)
        else:  # gla receive: the shipped configuration, its folders and ports from the environment
            port = _free_port()
            env.update(
                GLA_RECEIVER_RECEIVER__DATA_DIR=str(self.work / "receiver-data"),
                GLA_RECEIVER_INPUT__ENDPOINT=f"tcp://127.0.0.1:{_free_port()}",
                GLA_RECEIVER_HTTP__LISTEN=f"127.0.0.1:{port}",
            )
            self.ports.setdefault(9100, port)  # the address the README gives for /healthz and /metrics
            run = self._subst(cmd)
        name = cmd.split()[1]
        with open(self.log / f"{name}.log", "w") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                ["bash", "-c", "exec " + run], cwd=self.work, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.servers.append((cmd, proc, port))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"README command `{cmd}` exited {proc.returncode}:\n{self._log(name)}"
            try:
                status = _get(f"http://127.0.0.1:{port}/healthz", timeout_s=5)
            except OSError:
                time.sleep(0.3)
                continue
            # the example receiver answers 503 until its token file exists; it answers all the same
            assert status in (200, 503), f"`{cmd}`: /healthz answered {status}"
            return
        raise AssertionError(f"README command `{cmd}` did not answer /healthz within 180 s:\n{self._log(name)}")

    def _log(self, name: str) -> str:
        return (self.log / f"{name}.log").read_text()[-3000:]

    def check_addresses(self) -> None:
        """Every server is still up, and every local address in the section's text on one of their
        ports answers."""
        for cmd, proc, _ in self.servers:
            assert proc.poll() is None, f"README command `{cmd}` exited {proc.returncode} before its section ended"
        served = {port for _, _, port in self.servers}
        for m in re.finditer(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*[\w/])?", self.text):  # not a full stop
            port = self.ports.get(int(m.group(1)), int(m.group(1)))
            if port in served:
                status = _get(f"http://127.0.0.1:{port}{m.group(2) or '/'}")
                assert status < 400 or m.group(2) is None, f"{m.group(0)} answered {status}"

    def close(self) -> None:
        """SIGTERM to each server (as systemd stops them), SIGKILL after 60 s."""
        for _, proc, _ in self.servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def run_section(section: Section, tmp_path: Path) -> None:
    work = clone_for(tmp_path)
    before = _git_status()
    runner = Runner(work, section.text)
    try:
        for b in section.blocks:
            if b.lang in SHELL_LANGS:
                for cmd in commands(b):
                    if kind(cmd) != "ci":  # CI runs those: see the test above
                        runner.run(cmd)
        runner.check_addresses()
    finally:
        runner.close()
    after = _git_status()
    changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
    assert changed == [], f"the README's section {section.title!r} changed the clone itself (git status)"


#: README commands known to fail on this tree -> why. Their sections are expected to fail (strict:
#: once the command works, the test fails until its line here is removed).
KNOWN_BROKEN: dict[str, str] = {}  # README command -> why it is expected to fail (none now)


def _section_params() -> list:
    params = []
    for s in RUN_SECTIONS:
        cmds = [c.split("#")[0].strip() for b in s.blocks if b.lang in SHELL_LANGS for c in commands(b)]
        why = [KNOWN_BROKEN[c] for c in cmds if c in KNOWN_BROKEN]
        marks = [pytest.mark.xfail(reason="; ".join(why), strict=True, raises=AssertionError)] if why else []
        params.append(pytest.param(s, id=s.title, marks=marks))
    return params


@pytest.mark.parametrize("section", _section_params())
def test_readme_shell_section_runs_as_written(section, tmp_path):
    run_section(section, tmp_path)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"{b.section}:{b.line}" for b in PYTHON_BLOCKS])
def test_readme_python_example_runs_as_written(block, tmp_path):
    work = clone_for(tmp_path)
    r = subprocess.run(
        [sys.executable, "-c", block.text], cwd=work, env=_env(work), capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"README.md:{block.line}: the example failed:\n{r.stderr[-3000:]}"


def test_a_broken_command_fails_the_run(tmp_path):
    """The runner is not lenient: a command that fails, as a broken README line would, fails it."""
    broken = Section("broken", "", [Block("broken", "", "gla replay captures/no_such_capture\n", 1)])
    with pytest.raises(AssertionError, match="no_such_capture` exited 2"):
        run_section(broken, tmp_path)
