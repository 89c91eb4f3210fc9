"""Group commit of concurrent single posts on SQLite.

Bundles posted while the platform is busy with others are taken together through
:func:`.ingest.ingest_items` (one transaction, a savepoint each) and each request is answered with
its own outcome after the commit. Runs on the event loop like the single inline path; it only
saves the per-transaction cost under load. ``create_app`` makes one per app
(``app.state.group_commit``).
"""

from __future__ import annotations

import asyncio

from receiver.contracts.bundle import Bundle

from .context import Platform
from .ingest import Principal, ingest_items


class GroupCommit:
    MAX = 200

    def __init__(self, pf: Platform) -> None:
        self.pf = pf
        self.queue: list = []
        self.task: asyncio.Task[None] | None = None

    async def submit(self, principal: Principal, bundle: Bundle) -> tuple:
        """``(http_status, body or None, replayed, error or None)``, as :func:`.ingest.ingest_items` gives it."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.append((principal, bundle, fut))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the handlers that are ready enqueue theirs
        while self.queue:
            batch, self.queue = self.queue[: self.MAX], self.queue[self.MAX :]
            try:
                res = ingest_items(self.pf, [(p, b) for p, b, _ in batch])
            except BaseException as e:  # noqa: BLE001 - every waiting request gets the error
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, _, fut), r in zip(batch, res):
                if not fut.done():  # the client may have gone: the bundle is stored all the same
                    fut.set_result(r)
            await asyncio.sleep(0)
