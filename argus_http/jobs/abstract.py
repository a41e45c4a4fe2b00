"""One video abstract task (CONTRACT §12) on the runner: ``Engine.abstract`` in the job's thread.

Progress goes to the queue as it comes (at most every :data:`PROGRESS_EVERY` s; the queue keeps the highest
percent, so ``percent`` never goes down), and a write refused because the lease is gone stops the task. The
engine's ``stop`` is :meth:`Running.stopping`, the flag the runner sets on a cancel (at once in this process,
else at the monitor's next lease check), so decoding ends within 2 s of ``PUT ?cancel``.

The end is the seed's: the result (``durationInSecond``, ``language``, ``clipResults``; the GET's other fields
come from the job row), or the seed's error message (``InvalidMedia``, ``TimeOut``; ``InternalError`` is
retried while attempts remain, as §7 jobs are).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from argus_core.abstract import run as abstract_run
from argus_core.errors import ArgusError, Cancelled, InvalidRequest

from ..net.sources import engine_source
from ..queue.abstracts import with_auth
from ..queue.protocol import CANCELLED_MESSAGE
from ..save import CutSaver
from ..schemas import AbstractSubmit
from ..tenancy import scoped
from .running import Context, Running

#: seconds between two progress writes of one task
PROGRESS_EVERY = 0.25
#: what the engine's result keeps: the rest of the GET body is the job row's (never the engine's ``source``,
#: which is the resolved path or the URL with its ``auth``)
KEPT = ("durationInSecond", "language", "clipResults")
NAMED_TYPES = ("tv_play", "tv_show")  # the seed: person names only for these


def run(ctx: Context, r: Running) -> None:
    """Execute one leased abstract task (called on the job's thread)."""
    lease = r.lease
    try:
        task = msgspec.convert(lease.request, AbstractSubmit)
        uri = engine_source(with_auth(task.source, task.auth), ctx.s, ctx.guard)
    except (msgspec.ValidationError, InvalidRequest) as exc:  # validated at submit: a source refused now
        _fail(r, abstract_run.InvalidMedia(detail=str(exc)))
        return
    except ArgusError as exc:
        _fail(r, abstract_run.as_abstract_error(exc))
        return
    try:
        body = ctx.engine.abstract(  # type: ignore[attr-defined]
            uri, task.enableAbstractLayers, task.language, task.videoType, progress=_reporter(ctx, r),
            stop=r.stopping, task_id=lease.job_id, enable_person_name=task.enablePersonName,
            person_gallery=_gallery(ctx, task, lease.uid), time_limit_s=ctx.s.abstract_time_limit or None)
    except Exception as exc:
        _fail(r, abstract_run.as_abstract_error(exc))
        return
    if ctx.s.abstract_keyframes and not r.lost:
        save_keyframes(ctx, lease.job_id, uri, body)
    r.end(result={k: body[k] for k in KEPT if k in body})


def save_keyframes(ctx: Context, task_id: str, uri: str, body: dict) -> None:
    """``keyframeURI`` on every item with a ``keyframeInMS`` (shots, scenes): the frame the sampler shows at
    that offset, upright, as a JPEG in the frame store (the ``params.save`` store, CONTRACT §10). A frame that
    cannot be saved leaves its item without the URI and never fails the task (as ``params.save``)."""
    items = [i for i in body.get("clipResults") or [] if "keyframeInMS" in i]
    if not items or ctx.store is None:  # no frame store configured: as for params.save (jobs/video.py)
        return
    saver = CutSaver(ctx.store, uri, "abstract", task_id, getattr(ctx.engine, "source_options", None))
    try:
        cuts = [{"offset": int(i["keyframeInMS"])} for i in items]
        saver.cuts(cuts)
        for item, cut in zip(items, cuts):
            if cut.get("uri"):
                item["keyframeURI"] = cut["uri"]
    finally:
        saver.close()


def _fail(r: Running, err: ArgusError) -> None:
    if isinstance(err, Cancelled):
        r.end(error=CANCELLED_MESSAGE)  # a kill (the lease is gone: nothing is written) or a shutdown
        return
    code = getattr(err, "code", abstract_run.AbstractError.code)
    r.end(error=err.message, retry=code == abstract_run.AbstractError.code, detail=err.detail)


def _reporter(ctx: Context, r: Running) -> Any:
    """The engine's ``progress`` callback: percent and duration to the queue, throttled."""
    last = {"at": 0.0, "percent": -1}

    def progress(p: abstract_run.Progress) -> None:
        now = time.monotonic()
        first = last["percent"] < 0
        if r.lost or (not first and (p.percent <= last["percent"] or now - last["at"] < PROGRESS_EVERY)):
            return
        last.update(at=now, percent=p.percent)
        if not ctx.backend.record_progress(r.lease.job_id, r.lease.token, p.percent, p.duration_ms or None):
            r.lose()

    return progress


def _gallery(ctx: Context, task: AbstractSubmit, uid: str) -> str | None:
    """The caller's gallery for person names (``enablePersonName`` on tv_play / tv_show), if configured."""
    group = ctx.s.abstract_person_group
    if not (group and task.enablePersonName and task.videoType in NAMED_TYPES):
        return None
    return scoped(group, uid if ctx.s.auth_enabled else None)
