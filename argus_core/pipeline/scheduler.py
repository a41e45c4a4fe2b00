"""Who gets what: ring slots to decoders (fairly), decoded frames to the least-busy worker, waiting jobs to
idle decoders. Pure bookkeeping over the coordinator's state; every decision is a function of it.

Slot life: FREE → granted to a DECODER → written (READY, awaiting a worker) → at a WORKER → FREE. The parent
alone moves slots along, point-to-point over each child's pipe, so a child killed with ``-9`` can never
wedge a shared lock: the parent knows exactly which slots it held and takes them back.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, NamedTuple, Sequence

from .supervisor import Child

FREE, DECODER, READY, WORKER = range(4)


class Pending(NamedTuple):
    """A decoded frame awaiting a worker."""

    slot: int
    key: int
    seq: int


class SlotBook:
    """The state of every ring slot, and the free ones in order."""

    def __init__(self, n_slots: int) -> None:
        self.n_slots = n_slots
        self.state = [FREE] * n_slots
        self.free: deque[int] = deque(range(n_slots))

    def release(self, slot: int) -> None:
        if self.state[slot] != FREE:
            self.state[slot] = FREE
            self.free.append(slot)

    def take(self, state: int) -> int:
        slot = self.free.popleft()
        self.state[slot] = state
        return slot

    def mark(self, slot: int, state: int) -> None:
        self.state[slot] = state


def slot_cap(n_slots: int, busy: int) -> int:
    """How many slots one busy decoder may hold at once: an equal share, at least two."""
    return max(2, n_slots // max(1, busy))


def grant_slots(book: SlotBook, busy: Sequence[Child]) -> dict[int, list[int]]:
    """Hand free slots round-robin to busy decoders below their share: ``{decoder index: [slot, …]}``."""
    grants: dict[int, list[int]] = {}
    if not busy:
        return grants
    cap = slot_cap(book.n_slots, len(busy))
    progress = True
    while book.free and progress:
        progress = False
        for d in busy:
            if book.free and len(d.slots) < cap:
                slot = book.take(DECODER)
                d.slots.add(slot)
                grants.setdefault(d.index, []).append(slot)
                progress = True
    return grants


def dispatch(
    pending: deque[Pending], workers: Sequence[Child], cap: int, active_ops: Callable[[int], tuple[str, ...] | None],
    book: SlotBook,
) -> dict[int, list[tuple[Pending, tuple[str, ...]]]]:
    """Decoded frames to the least-busy ready workers (each below ``cap`` frames in flight).

    ``active_ops(key)``: the job's ops still running, None if the job is gone (its frame's slot is freed).
    Returns ``{worker index: [(frame, ops), …]}``; frames no worker can take stay pending."""
    batches: dict[int, list[tuple[Pending, tuple[str, ...]]]] = {}
    while pending:
        ready = [w for w in workers if w.ready and len(w.slots) < cap and w.alive]
        if not ready:
            break
        w = min(ready, key=lambda c: len(c.slots))
        item = pending.popleft()
        ops = active_ops(item.key)
        if not ops:
            book.release(item.slot)
            continue
        book.mark(item.slot, WORKER)
        w.slots.add(item.slot)
        batches.setdefault(w.index, []).append((item, ops))
    return batches


def idle_decoders(decoders: Iterable[Child]) -> list[Child]:
    return [d for d in decoders if d.job is None and d.alive]
