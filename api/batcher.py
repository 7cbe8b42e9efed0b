"""Micro-batching of concurrent single predictions.

Each model call has a fixed cost (building sparse matrices, one product per calibration fold)
that does not grow with the number of texts. Requests that arrive together are therefore
queued and scored in one call on the event loop: the batcher waits two loop turns, so every
request whose bytes have already arrived joins the batch, and a lone request waits for
nothing. Items keep the model they were admitted with, so a hot swap never changes the model
of a request in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from api.model_holder import LoadedModel

log = logging.getLogger(__name__)


class MicroBatcher:
    def __init__(self, max_batch: int, on_batch: Callable[[float], None] | None = None) -> None:
        self.max_batch = max_batch
        self._on_batch = on_batch
        self._pending: list[tuple[LoadedModel, str, asyncio.Future[float]]] = []
        self._scheduled = False
        self.batches = 0
        self.items = 0

    async def score(self, loaded: LoadedModel, text: str) -> float:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._pending.append((loaded, text, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(loop.call_soon, self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._scheduled = False
        groups: dict[int, list[tuple[LoadedModel, str, asyncio.Future[float]]]] = {}
        for item in pending:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            loaded = items[0][0]
            try:
                probabilities = loaded.score([text for _, text, _ in items]).tolist()
            except Exception as exc:  # a scoring bug answers these requests with an error, not a hang
                log.exception("scoring a batch of %d failed", len(items))
                for _, _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(items)
            if self._on_batch is not None:
                self._on_batch(len(items))
            for (_, _, future), probability in zip(items, probabilities, strict=True):
                if not future.done():  # the client may have gone away
                    future.set_result(probability)
