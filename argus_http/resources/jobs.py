"""``GET /v1/jobs/<kind>?status=&marker=&limit=``, ``GET /v1/jobs/<kind>/<id>`` and the kill
``POST /v1/jobs/<kind>/<id>`` (form ``op=kill``, ``?op=kill`` or JSON ``{"op": "kill"}``), CONTRACT §7."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import falcon

from argus_core.errors import InvalidRequest

from ..edge import JOB_ID, JSON_TYPE, answer, caller_uid, int_param, media_type, read_body
from ..errors import JobNotFound, UnsupportedMediaType
from ..queue import abstracts
from ..queue import tables as dbm
from ..queue.tables import ABSTRACT
from ..schemas import Kill
from .. import report
from ..service import Service


class JobsResource:
    def __init__(self, svc: Service, kind: str) -> None:
        self.svc, self.kind = svc, kind

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = req.get_param("status")  # present but blank is no status either: 400, as the schema says
        if status is not None and status not in dbm.STATUSES:
            raise InvalidRequest(detail="unknown status")
        limit = int_param(req, "limit", 100, 1, 1000)
        marker = req.get_param("marker") or None
        answer(resp, self.svc.queue.list(caller_uid(req), status, marker, limit, kind=self.kind))


class ReportResource:
    """``GET /v1/jobs/video/<id>/report``: the timeline page (CONTRACT §14), scoped like the job GET."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        if not JOB_ID.match(job_id):
            raise JobNotFound()
        uid = caller_uid(req)
        job = self.svc.queue.get(job_id, uid, kind="video")
        resp.content_type = "text/html; charset=utf-8"
        resp.text = report.for_job(job, self.svc.s, self.svc.guard, getattr(self.svc.engine, "source_options", None),
                                   network=self.svc.engine is not None, abstract=self._abstract(uid, job))

    def _abstract(self, uid: str | None, job: dict[str, Any]) -> dict[str, Any] | None:
        """The caller's finished abstract of the job's source, if there is one: the page then shows its
        shot/scene/clip tree too (issue 13). Scoped like the abstract GET (another key's is not there)."""
        source = report.source_of(report.split_input(job)[1])
        if not source:
            return None
        rec = self.svc.queue.latest(uid or "", ABSTRACT, abstracts.source_key(source))
        if rec is None or rec.status != dbm.FINISHED:
            return None
        return abstracts.view(rec)


class JobResource:
    def __init__(self, svc: Service, kind: str) -> None:
        self.svc, self.kind = svc, kind

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        if not JOB_ID.match(job_id):
            raise JobNotFound()
        answer(resp, self.svc.queue.get(job_id, caller_uid(req), kind=self.kind))

    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        op = req.get_param("op")
        if op is None:
            ctype = media_type(req)
            if ctype == JSON_TYPE:
                op = read_body(req, Kill, required=False).op
            elif ctype in ("", "application/x-www-form-urlencoded"):
                raw: bytes = req.context.body
                op = (parse_qs(raw.decode("utf-8", "replace")).get("op") or [None])[0]
            else:
                raise UnsupportedMediaType()
        if op != "kill":
            raise InvalidRequest(detail="op must be kill")
        if not JOB_ID.match(job_id):
            raise JobNotFound()
        # Make sure the job is of this kind (and the caller's) before touching it.
        self.svc.queue.get(job_id, caller_uid(req), kind=self.kind)
        answer(resp, self.svc.queue.cancel(job_id, caller_uid(req)))
