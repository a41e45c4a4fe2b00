"""The Falcon application, assembled: every route of CONTRACT §1, §7–§9 and §12, plus /healthz, /metrics and
/openapi.json. What each route does is in :mod:`argus_http.resources`; what every request passes through
(body, auth, metrics, JSON, the one error handler) in :mod:`argus_http.edge`."""

from __future__ import annotations

from typing import Any, Callable

import falcon

from .edge import JSON, JSON_TYPE, Gate, on_error
from .resources.abstract import AbstractResource
from .resources.faces import GroupResource, GroupsResource
from .resources.health import HealthResource, MetricsResource, OpenAPIResource
from .resources.jobs import JobResource, JobsResource, ReportResource
from .resources.queue import QueueJobResource, QueueJobsResource
from .resources.vframe import VframeResource
from .resources.video import VideoResource
from .service import Service

__all__ = ["ROUTES", "Service", "create_app"]


def _of_kind(cls: Any, kind: str) -> Callable[[Service], Any]:
    return lambda svc: cls(svc, kind)


#: (URI template, resource factory, suffix). The OpenAPI document lists exactly these (a test checks it).
ROUTES: list[tuple[str, Callable[[Service], Any], str | None]] = [
    ("/v1/video/{video_id}", VideoResource, None),
    ("/v1/jobs/video", _of_kind(JobsResource, "video"), None),
    ("/v1/jobs/video/{job_id}", _of_kind(JobResource, "video"), None),
    ("/v1/jobs/video/{job_id}/report", ReportResource, None),
    ("/v1/vframe", VframeResource, None),
    ("/v1/jobs/vframe", _of_kind(JobsResource, "vframe"), None),
    ("/v1/jobs/vframe/{job_id}", _of_kind(JobResource, "vframe"), None),
    ("/v1/jobs", QueueJobsResource, None),
    ("/v1/job/{job_id}/touch", QueueJobResource, "touch"),
    ("/v1/job/{job_id}/finish", QueueJobResource, "finish"),
    ("/v1/job/{job_id}/events", QueueJobResource, "events"),
    ("/v1/job/{job_id}/release", QueueJobResource, "release"),
    ("/v1/videoAbstract", AbstractResource, None),
    ("/v1/face/group", GroupsResource, None),
    ("/v1/face/group/{gid}", GroupResource, None),
    ("/v1/face/group/{gid}/add", GroupResource, "add"),
    ("/v1/face/group/{gid}/remove", GroupResource, "remove"),
    ("/v1/face/group/{gid}/search", GroupResource, "search"),
    ("/healthz", HealthResource, None),
    ("/metrics", MetricsResource, None),
    ("/openapi.json", OpenAPIResource, None),
]


def create_app(svc: Service) -> falcon.App:
    """The WSGI application."""
    app = falcon.App(middleware=[Gate(svc)], media_type=JSON_TYPE)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.media_handlers[JSON_TYPE] = JSON
    app.resp_options.media_handlers[JSON_TYPE] = JSON
    app.add_error_handler((Exception, falcon.HTTPError), on_error)
    shared: dict[Any, Any] = {}
    for template, factory, suffix in ROUTES:
        # One resource object per factory (the queue job routes share one).
        res = shared.get(factory)
        if res is None:
            res = shared[factory] = factory(svc)
        if suffix:
            app.add_route(template, res, suffix=suffix)
        else:
            app.add_route(template, res)
    return app
