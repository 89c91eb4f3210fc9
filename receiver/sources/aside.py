"""Messages held aside until confirmed: what may start a new segment of a ZeroMQ stream.

A message that does not continue the stream the :class:`StreamAssembler` follows (another
``session``, another shape, another stream id when none was configured, or a sample clock that
went back without being a duplicate) is either the first message of a restarted sender or a
forged / stray message. One message cannot tell which, so it is held here, with the others of
the same identity, and the followed stream goes on untouched. The identity is *confirmed* when
``confirm`` messages of it (distinct keys) arrive in a row, with no new message of the followed
stream between them; the assembler then re-anchors on it and delivers everything held for it as
the new segment. A candidate that the followed stream keeps interrupting is dropped after
``stale_after`` of its messages, so a forged message costs its own samples and nothing else.

Bounded: at most ``max_candidates`` identities, each holding at most ``capacity`` messages (the
oldest go first). No I/O, no logging: the assembler counts and logs what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from receiver.sources.messages import Message

__all__ = ["Ident", "Candidate", "Aside"]


class Ident(NamedTuple):
    """What a segment is: its stream id, session, shape and whether its clock went back."""

    stream_id: str
    session: int | None
    shape: tuple
    rewind: bool = False


@dataclass
class Candidate:
    ident: Ident
    kind: str  #: "foreign" | "shape" | "session" | "rewind": the counter it is dropped into
    messages: dict[int, Message] = field(default_factory=dict)  #: key -> message
    run: int = 0  #: messages of it in a row (no new message of the followed stream between)
    idle: int = 0  #: new messages of the followed stream since it last grew


class Aside:
    """The held-aside candidates (see the module docstring)."""

    def __init__(
        self, confirm: int | None, *, capacity: int = 16, max_candidates: int = 4, stale_after: int = 16
    ) -> None:
        self.confirm = confirm
        self.capacity, self.max_candidates, self.stale_after = capacity, max_candidates, stale_after
        self._c: dict[Ident, Candidate] = {}

    def __len__(self) -> int:
        return sum(len(c.messages) for c in self._c.values())

    def __contains__(self, ident: object) -> bool:
        return ident in self._c

    def describe(self) -> str:
        return ", ".join(f"{len(c.messages)} of {c.kind} {_fmt(c.ident)}" for c in self._c.values())

    def add(self, ident: Ident, kind: str, m: Message) -> tuple[Candidate | None, list[tuple[str, Message]], bool]:
        """Hold ``m``; returns ``(confirmed candidate or None, dropped (kind, message), repeated)``.
        ``repeated``: a message of that key was already held (``m`` is dropped as a duplicate).
        The confirmed candidate is removed from the store; the caller adopts it."""
        dropped: list[tuple[str, Message]] = []
        c = self._c.get(ident)
        if c is None:
            if len(self._c) >= self.max_candidates:  # evict the one that grew least recently
                old = max(self._c.values(), key=lambda x: x.idle)
                dropped += self._drop(old)
            c = self._c[ident] = Candidate(ident, kind)
        if m.key in c.messages:
            return None, dropped, True
        c.messages[m.key] = m
        c.run += 1
        c.idle = 0
        while len(c.messages) > self.capacity:
            dropped.append((c.kind, c.messages.pop(min(c.messages))))
        if self.confirm is not None and c.run >= self.confirm:
            del self._c[ident]
            return c, dropped, False
        return None, dropped, False

    def interrupt(self) -> list[tuple[str, Message]]:
        """A new message of the followed stream: every run starts again; stale candidates go."""
        dropped: list[tuple[str, Message]] = []
        for c in list(self._c.values()):
            c.run = 0
            c.idle += 1
            if c.idle > self.stale_after:
                dropped += self._drop(c)
        return dropped

    def take(self, ident: Ident) -> list[Message]:
        """Remove and return the messages held for ``ident`` (a fresh stream anchors on it)."""
        c = self._c.pop(ident, None)
        return [] if c is None else list(c.messages.values())

    def drop_all(self) -> list[tuple[str, Message]]:
        dropped: list[tuple[str, Message]] = []
        for c in list(self._c.values()):
            dropped += self._drop(c)
        return dropped

    def _drop(self, c: Candidate) -> list[tuple[str, Message]]:
        del self._c[c.ident]
        return [(c.kind, m) for m in c.messages.values()]


def _fmt(i: Ident) -> str:
    s = f"session {i.session:#x}" if i.session is not None else "stream"
    return f"{i.stream_id!r} {s}{' (clock went back)' if i.rewind else ''}"
