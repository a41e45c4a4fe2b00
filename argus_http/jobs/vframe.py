"""The frames-only task (CONTRACT §9, Argus-Vframe).

A job ``{data:{uri}, params:{mode, interval, ss, t}, callback}`` samples frames exactly as the engine would
(same sampler, same offsets), saves each as JPEG in the frame store and reports through three callbacks,
each carrying the execution's lease token so a re-run is distinguishable::

    POST <callback>begin/<id>/<token>   {}
    POST <callback>cuts/<id>/<token>    {code, message, result:{cuts:[{offset, uri}]}}   (one per frame)
    POST <callback>end/<id>/<token>     {code, message}                                  (code 0 = success)

The callbacks go through the outbox in one ordered chain, so they arrive in that order and survive restarts.
"""

from __future__ import annotations

import logging
from typing import Any

from argus_core.errors import ArgusError, InvalidRequest
from argus_core.request import parse_request, sampling_of
from argus_core.media.sampler import sample

from ..delivery import callbacks as cb
from ..net.sources import engine_source
from ..save import cut_key, jpeg_bytes
from .running import Context, Running

log = logging.getLogger("argus.vframe")


def as_video_request(task: dict[str, Any]) -> dict[str, Any]:
    """The vframe task as a video request body, so the engine's validation gives the documented errors."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise InvalidRequest(detail="vframe task needs data.uri")
    params = task.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidRequest(detail="params must be an object")
    vf = {k: params[k] for k in ("mode", "interval", "ss", "t") if k in params}
    return {"data": {"uri": task["data"].get("uri")}, "params": {"vframe": vf}, "ops": [{"op": "vframe"}]}


def validate(task: dict[str, Any], max_interval: float) -> None:
    """Raise the documented 400 for a bad task (``callback`` is checked by the caller)."""
    parse_request(as_video_request(task), None, max_interval=max_interval)
    if not isinstance(task.get("callback"), str) or not task["callback"]:
        raise InvalidRequest(detail="vframe task needs a callback base URL")


def run(ctx: Context, r: Running) -> None:
    """Execute one leased vframe job (called on the job's thread)."""
    lease = r.lease
    task = lease.request
    base = task.get("callback", "")
    job, token = lease.job_id, lease.token
    be = ctx.backend

    def post(name: str, step: str, body: dict[str, Any]) -> None:
        if not r.lost and not be.record_callback(job, token, name, cb.vframe_url(base, step, job, token), body):
            r.lose()

    post(f"{token}.begin", "begin", {})
    count = 0
    try:
        req = parse_request(as_video_request(task), None, max_interval=ctx.s.max_interval)
        uri = engine_source(req.data.uri, ctx.s, ctx.guard)
        for offset, frame in sample(uri, sampling_of(req), r.stopping, max_frames=ctx.s.max_frames):
            if r.stopping():
                break
            cut: dict[str, Any] = {"offset": offset}
            if ctx.store is not None:
                try:
                    cut["uri"] = ctx.store.put(cut_key("vframe", job, offset), jpeg_bytes(frame))
                except Exception as exc:  # §10: a save failure leaves uri out, the task goes on
                    log.warning("frame save failed", extra={"job": job, "offset": offset, "error": str(exc)})
            post(f"{token}.cut.{count}", "cuts", cb.vframe_cuts_body([cut]))
            count += 1
            ctx.metrics.frames(1)
    except ArgusError as exc:
        post(f"{token}.end", "end", cb.vframe_end_body(exc.status, exc.message))
        r.end(error=exc.message, detail=exc.detail)
        return
    if r.lost:
        return
    if r.stop_event.is_set() and r.releasing:
        r.end(error="interrupted")
        return
    post(f"{token}.end", "end", cb.vframe_end_body(0, ""))
    r.end(result={"cuts": count})
