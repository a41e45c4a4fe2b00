"""``POST /v1/video/<video_id>`` (CONTRACT §1, §7): analyse now (sync), or queue it (``params.async``)."""

from __future__ import annotations

from typing import Any

import falcon

from argus_core.errors import InvalidRequest, Saturated
from argus_core import verdict
from argus_core.request import VideoRequest

from ..edge import VIDEO_ID, answer, caller_uid, read_body
from ..net.sources import check_hooks, check_source, engine_source, with_source
from ..save import CutSaver
from ..live import check_live
from ..service import Service
from ..tenancy import scoped_request


def idempotency_key(req: falcon.Request) -> str | None:
    """The optional ``Idempotency-Key`` header (1–255 printable characters), else None."""
    key = req.get_header("Idempotency-Key")
    if key is None:
        return None
    if not (0 < len(key) <= 255 and key.isprintable()):
        raise InvalidRequest(detail="Idempotency-Key must be 1-255 printable characters", public=True)
    return key


class VideoResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_post(self, req: falcon.Request, resp: falcon.Response, video_id: str) -> None:
        svc = self.svc
        body = read_body(req, dict[str, Any])
        if not VIDEO_ID.match(video_id):
            raise InvalidRequest(detail="bad video_id")
        parsed = svc.parse(body)
        check_live(parsed)
        check_source(parsed.data.uri, svc.s, svc.guard)
        if parsed.params.async_:
            check_hooks(parsed, svc.guard)
            job_id = svc.queue.submit(caller_uid(req) or "", body, vid=video_id, parsed=parsed,
                                      idempotency_key=idempotency_key(req))
            svc.on_submit()
            answer(resp, {"job": job_id})
            return
        result = self._sync(scoped_request(body, caller_uid(req)), parsed, video_id)
        # §14: suggestions inside each op; the video's own in a header, as the body is exactly {op: ...}
        resp.set_header(verdict.HEADER, verdict.annotate(result, verdict.policies_of(body, svc.s.verdict_policy)))
        answer(resp, result)

    def _sync(self, body: dict[str, Any], parsed: VideoRequest, video_id: str) -> Any:
        svc = self.svc
        if svc.engine is None:
            raise Saturated("sync analysis is not available on this server")
        if not svc.sync_slots.acquire(timeout=svc.s.sync_wait):
            svc.metrics.add("sync_rejected")
            raise Saturated()
        svc.metrics.add("sync_inflight")
        save = parsed.params.save
        try:
            source = engine_source(parsed.data.uri, svc.s, svc.guard)
            result = svc.engine.analyze(with_source(body, source))
            if save is not None and svc.store is not None:
                # §10: kept cuts as JPEG; still inside the slot, as it decodes the video again.
                saver = CutSaver(svc.store, source, save.prefix, video_id,
                                 getattr(svc.engine, "source_options", None))
                try:
                    saver.job_result(result)
                finally:
                    saver.close()
        finally:
            svc.metrics.add("sync_inflight", -1)
            svc.sync_slots.release()
        return result
