"""Mailboxes: how a panel's browser half reaches its kernel while a cell runs.

A kernel busy with a cell (`login()` waiting, a refresh inside a long cell) handles comm messages only after
the cell: measured with JupyterLab 4.6 and ipykernel 7 (see the design notes). A kernel can still make HTTP
calls to its own Jupyter server from a thread, so the browser posts its messages here and the kernel collects
them with a long poll. Pure Python with asyncio waits, so nothing blocks Tornado's loop.

Bounded: at most `max_boxes` boxes (the least recently used is dropped), `max_messages` per box, and a message
not collected within `message_lifetime` seconds is dropped (it may hold a personal access token).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BOX_ID", "Mailboxes", "is_box_id"]

BOX_ID = re.compile(r"[A-Za-z0-9_-]{24,64}")


def is_box_id(value: str | None) -> bool:
    return value is not None and BOX_ID.fullmatch(value) is not None


@dataclass(eq=False)
class _Box:
    messages: deque[tuple[float, dict[str, Any]]] = field(default_factory=deque, repr=False)
    waiters: set[asyncio.Event] = field(default_factory=set)


class Mailboxes:
    def __init__(
        self,
        *,
        max_boxes: int = 1000,
        max_messages: int = 16,
        message_lifetime: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_boxes = max_boxes
        self.max_messages = max_messages
        self.message_lifetime = message_lifetime
        self.clock = clock
        self._boxes: OrderedDict[str, _Box] = OrderedDict()

    def __len__(self) -> int:
        return len(self._boxes)

    def post(self, box_id: str, message: dict[str, Any]) -> bool:
        """Leave `message` for the kernel; False when the box is full (its kernel collects nothing)."""
        box = self._box(box_id)
        self._drop_stale(box)
        if len(box.messages) >= self.max_messages:
            return False
        box.messages.append((self.clock(), message))
        for waiter in box.waiters:
            waiter.set()
        return True

    async def take(self, box_id: str, wait: float) -> list[dict[str, Any]]:
        """The box's messages (removed from it), waiting up to `wait` seconds for the first one."""
        box = self._box(box_id)
        self._drop_stale(box)
        if not box.messages and wait > 0:
            event = asyncio.Event()
            box.waiters.add(event)
            try:
                await asyncio.wait_for(event.wait(), wait)
            except asyncio.TimeoutError:
                pass
            finally:
                box.waiters.discard(event)
            self._drop_stale(box)
        taken = [message for _, message in box.messages]
        box.messages.clear()
        return taken

    def _box(self, box_id: str) -> _Box:
        box = self._boxes.get(box_id)
        if box is None:
            while len(self._boxes) >= self.max_boxes:
                _, dropped = self._boxes.popitem(last=False)
                for waiter in dropped.waiters:
                    waiter.set()
            box = self._boxes[box_id] = _Box()
        else:
            self._boxes.move_to_end(box_id)
        return box

    def _drop_stale(self, box: _Box) -> None:
        oldest_kept = self.clock() - self.message_lifetime
        while box.messages and box.messages[0][0] < oldest_kept:
            box.messages.popleft()
