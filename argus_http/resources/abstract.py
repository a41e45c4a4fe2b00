"""``PUT /v1/videoAbstract`` (submit), ``GET /v1/videoAbstract?source=`` (the latest result) and
``PUT /v1/videoAbstract?cancel&source=`` (cancel), CONTRACT §12.

A task is a job of kind ``abstract`` in the one queue, keyed by the caller's uid and a hash of the source
(:mod:`argus_http.queue.abstracts`): a source with an unfinished task is a 409, an ended one is analysed again
and the new task replaces it. The source passes the same checks as ``/v1/video``'s ``data.uri`` (http(s)
through the SSRF guard, ``file://`` only below the media root); ``auth`` is kept with the task for the runner
to append and is never part of an answer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import falcon
import msgspec

from argus_core.errors import InvalidRequest

from ..edge import answer, caller_uid, read_body
from ..errors import AbstractNotFound
from ..net.sources import check_hook, check_source
from ..queue import abstracts
from ..queue.protocol import Hooks, Record
from ..queue.tables import ABSTRACT
from ..schemas import AbstractSubmit
from ..service import Service

SCHEMES = frozenset({"http", "https", "file"})


def _bad(detail: str) -> InvalidRequest:
    return InvalidRequest(detail=detail, public=True)


class AbstractResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.has_param("cancel"):
            self._cancel(req, resp)
            return
        svc = self.svc
        task = read_body(req, AbstractSubmit)
        self._check(task)
        hooks = None
        if task.notification is not None:
            url = svc.s.abstract_notifications.get(task.notification)
            if url is None:
                raise _bad(f"unknown notification {task.notification!r}")
            check_hook(url, svc.guard)
            hooks = Hooks(final=url)
        # stored normalised: layers sorted and unique, as the runner and the GET read them
        stored = msgspec.structs.replace(task, enableAbstractLayers=sorted(set(task.enableAbstractLayers)))
        uid = caller_uid(req) or ""
        vid = abstracts.source_key(task.source)
        job_id = svc.queue.submit(uid, msgspec.to_builtins(stored), vid=vid, kind=ABSTRACT,
                                  priority=task.priority, hooks=hooks, exclusive=True)
        svc.on_submit()
        created = svc.queue.record(job_id)
        assert created is not None  # only a re-submit of this source deletes it, and that waits for its end
        answer(resp, abstracts.accepted(created))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer(resp, abstracts.view(self._latest(caller_uid(req) or "", self._source(req))))

    def _cancel(self, req: falcon.Request, resp: falcon.Response) -> None:
        """PROVISIONING → CANCELLED at once; PROCESSING too, its decoding stopped within 2 s (beyond the seed,
        which cancels queued tasks only). An ended task: 400 ``fail to cancel job``, as a §7 kill."""
        uid = caller_uid(req) or ""
        rec = self._latest(uid, self._source(req))
        self.svc.queue.cancel(rec.job_id, uid)
        answer(resp, {})

    def _check(self, task: AbstractSubmit) -> None:
        """What the body's types cannot say: the source's scheme and safety (as ``/v1/video``), and ``auth``."""
        svc = self.svc
        scheme = urlsplit(task.source).scheme.lower()
        if scheme not in SCHEMES:
            raise _bad("source must be an http(s) URL or a file:// URI")
        # the guard checks the host, which auth (URL parameters) cannot change: checked without it, so that
        # a refusal's logged detail never holds the caller's credentials
        check_source(task.source, svc.s, svc.guard)
        if task.auth is not None:
            if scheme == "file":
                raise _bad("auth is for http(s) sources only")
            if not task.auth or "#" in task.auth or not task.auth.isprintable() or any(c.isspace() for c in task.auth):
                raise _bad("auth must be URL parameters: key1=value1&key2=value2")

    def _latest(self, uid: str, source: str) -> Record:
        rec = self.svc.queue.latest(uid, ABSTRACT, abstracts.source_key(source))
        if rec is None:
            raise AbstractNotFound()
        return rec

    @staticmethod
    def _source(req: falcon.Request) -> str:
        source = req.get_param("source")
        if not source:
            raise _bad("source is required")
        return source
