"""``POST /v1/vframe``: submit a frames-only task (CONTRACT §9)."""

from __future__ import annotations

from typing import Any

import falcon

from argus_core.errors import InvalidRequest

from ..edge import VIDEO_ID, answer, caller_uid, read_body
from ..jobs.vframe import validate
from ..net.sources import check_hook, check_source
from ..service import Service


class VframeResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        svc = self.svc
        task = read_body(req, dict[str, Any])
        validate(task, svc.s.max_interval)
        check_source(task["data"]["uri"], svc.s, svc.guard)
        check_hook(task["callback"], svc.guard)
        vid = str(task.get("id") or "")
        if vid and not VIDEO_ID.match(vid):
            raise InvalidRequest(detail="bad id")
        job_id = svc.queue.submit(caller_uid(req) or "", task, vid=vid, kind="vframe")
        svc.on_submit()
        answer(resp, {"job": job_id})
