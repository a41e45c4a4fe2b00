"""The queue API (CONTRACT §8): ``POST /v1/jobs {uid, job}`` → ``{id}``; ``GET /v1/jobs?number=N`` leases up
to N jobs; ``POST /v1/job/<id>/touch|finish``, plus ``events`` and ``release`` used by
``argus worker --queue-url`` to report segments/op results/vframe callbacks/abstract progress and to give a
lease back."""

from __future__ import annotations

from typing import Any

import falcon

from argus_core.errors import InvalidRequest

from ..edge import VIDEO_ID, answer, int_param, read_body, require_queue_role
from ..errors import LeaseLost
from ..net.sources import check_hooks, check_source
from ..schemas import (CallbackEvent, Events, Finish, LeaseToken, LeaseView, OpEvent, ProgressEvent, QueueSubmit,
                       SegmentEvent)
from ..service import Service


class QueueJobsResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        svc = self.svc
        require_queue_role(req, svc)
        body = read_body(req, QueueSubmit)
        parsed = svc.parse(body.job)
        check_source(parsed.data.uri, svc.s, svc.guard)
        check_hooks(parsed, svc.guard)
        vid = (parsed.data.attribute.id if parsed.data.attribute else None) or ""
        if vid and not VIDEO_ID.match(vid):
            raise InvalidRequest(detail="bad data.attribute.id")
        job_id = svc.queue.submit(str(body.uid), body.job, vid=vid, parsed=parsed)
        svc.on_submit()
        answer(resp, {"id": job_id})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        svc = self.svc
        require_queue_role(req, svc)
        number = int_param(req, "number", 1, 1, 100)
        kinds = tuple(k for k in (req.get_param("kind") or "video,vframe").split(",") if k)
        if not set(kinds) <= {"video", "vframe", "abstract"}:
            raise InvalidRequest(detail="unknown kind")
        owner = f"remote:{req.remote_addr}"
        leases = svc.queue.claim(owner, number, kinds)
        answer(resp, [LeaseView(id=l.job_id, uid=int(l.uid) if l.uid.isdigit() else l.uid, job=l.request,
                                timeout=int(l.timeout), lease=l.token, kind=l.kind, vid=l.vid,  # type: ignore[arg-type]
                                attempts=l.attempts, resume_ms=l.resume_ms) for l in leases])


def _check(ok: bool) -> None:
    if not ok:
        raise LeaseLost()


class QueueJobResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def _body(self, req: falcon.Request, type_: Any) -> tuple[Any, str]:
        """The typed body and the lease token (``?lease=`` or the body's ``lease``)."""
        require_queue_role(req, self.svc)
        body = read_body(req, type_, required=False)
        token = req.get_param("lease") or body.lease
        if not isinstance(token, str) or not token:
            raise LeaseLost()
        return body, token

    def on_post_touch(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        _, token = self._body(req, LeaseToken)
        _check(self.svc.queue.touch(job_id, token))
        answer(resp, {"timeout": int(self.svc.s.lease_seconds)})

    def on_post_finish(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        body, token = self._body(req, Finish)
        if body.error is None and body.result is None:
            raise InvalidRequest(detail="finish needs {result} or {error}")
        _check(self.svc.queue.finish(job_id, token, result=body.result, error=body.error,
                                     retryable=bool(body.retryable)))
        answer(resp, {})

    def on_post_events(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        body, token = self._body(req, Events)
        q = self.svc.queue
        for ev in body.events:
            if isinstance(ev, SegmentEvent):
                ok = q.record_segment(job_id, token, ev.op, ev.index, ev.result or {})
            elif isinstance(ev, OpEvent):
                ok = q.record_op(job_id, token, ev.op, ev.result or {})
            elif isinstance(ev, ProgressEvent):
                ok = q.record_progress(job_id, token, ev.percent, ev.duration_ms, ev.live)
            else:
                ok = self._vframe_callback(job_id, token, ev)
            _check(ok)
        answer(resp, {})

    def _vframe_callback(self, job_id: str, token: str, ev: CallbackEvent) -> bool:
        # A remote worker may only post to the callback base its job was submitted with.
        job = self.svc.queue.get(job_id, None, kind="vframe")
        base = str(job["request"].get("callback", ""))
        if not base or not ev.url.startswith(base if base.endswith("/") else base + "/"):
            raise InvalidRequest(detail="callback URL outside the task's callback base")
        return self.svc.queue.record_callback(job_id, token, ev.name, ev.url, ev.body or {})

    def on_post_release(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        _, token = self._body(req, LeaseToken)
        _check(self.svc.queue.release(job_id, token))
        answer(resp, {})
