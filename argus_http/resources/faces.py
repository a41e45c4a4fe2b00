"""Face gallery management (the groups that ``face_group_search`` searches), over
:attr:`argus_core.Engine.galleries`.

Routes (JSON; errors ``{"error": message}``)::

    GET    /v1/face/group                   groups of the caller
    POST   /v1/face/group/<gid>             create      {meta?}
    GET    /v1/face/group/<gid>             the group and its face records
    DELETE /v1/face/group/<gid>             delete
    POST   /v1/face/group/<gid>/add         enrol       {data:{uri, attribute:{name, id?, meta?}}}
    POST   /v1/face/group/<gid>/remove      remove      {ids?:[...], names?:[...]}
    POST   /v1/face/group/<gid>/search      search      {data:{uri}, params?:{threshold}}

With auth on, groups are per access key like jobs (:mod:`argus_http.tenancy`).
"""

from __future__ import annotations

from typing import Any

import falcon

from argus_core.errors import ArgusError, InvalidRequest

from ..edge import answer, caller_uid, read_body
from ..net.sources import fetch_bytes
from ..schemas import FaceAdd, FaceRemove, FaceSearch, GroupCreate
from ..service import Service
from ..tenancy import scoped, unscoped


class FacesUnavailable(ArgusError):
    status = 503
    message = "face models are not installed"


def _models(fn: Any, *args: Any, **kw: Any) -> Any:
    from argus_core.runtime.manifest import ModelError

    try:
        return fn(*args, **kw)
    except ModelError as exc:
        raise FacesUnavailable(detail=str(exc)) from None


def _public(info: dict[str, Any], gid: str) -> dict[str, Any]:
    return {**info, "group": gid}


class GroupsResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def _store(self) -> Any:
        if self.svc.engine is None or not hasattr(self.svc.engine, "galleries"):
            raise FacesUnavailable("face galleries are not available on this server")
        return self.svc.engine.galleries

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:

        uid = caller_uid(req)
        out = []
        for g in self._store().list_groups():
            name = unscoped(g["group"], uid)
            if name is not None:
                out.append(_public(g, name))
        answer(resp, out)


class GroupResource(GroupsResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:

        body = read_body(req, GroupCreate, required=False)
        info = self._store().create_group(scoped(gid, caller_uid(req)), meta=body.meta)
        answer(resp, _public(info, gid))

    def on_get(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:  # type: ignore[override]

        store, name = self._store(), scoped(gid, caller_uid(req))
        info = store.group_info(name)
        answer(resp, {**_public(info, gid), "face_list": store.list_faces(name)})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:

        self._store().delete_group(scoped(gid, caller_uid(req)))
        answer(resp, {})

    def on_post_add(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:

        data = read_body(req, FaceAdd).data
        attr = data.attribute
        image = fetch_bytes(data.uri, self.svc.s, self.svc.guard)
        store = self._store()
        record = _models(store.add_face, scoped(gid, caller_uid(req)), image, attr.name, id=attr.id,
                         meta=attr.meta if isinstance(attr.meta, dict) else None)
        answer(resp, record)

    def on_post_remove(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:

        body = read_body(req, FaceRemove)
        ids, names = body.ids or [], body.names or []
        if not (ids or names):
            raise InvalidRequest(detail="expected {ids:[...]} and/or {names:[...]}")
        store, name = self._store(), scoped(gid, caller_uid(req))
        removed = 0
        for fid in ids:
            store.remove_face(name, str(fid))
            removed += 1
        for person in names:
            removed += store.remove_name(name, str(person))
        answer(resp, {"removed": removed})

    def on_post_search(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:

        body = read_body(req, FaceSearch)
        threshold = body.params.threshold if body.params is not None else 0.6
        image = fetch_bytes(body.data.uri, self.svc.s, self.svc.guard)
        store, name = self._store(), scoped(gid, caller_uid(req))
        store.group_info(name)  # 404 before any model work
        faces = _models(store.search_image, name, image, float(threshold))
        out = []
        for f in faces:
            m = f["match"]
            value = None if m is None else {"id": m.id, "name": m.name if m.matched else "",
                                            "score": round(m.score, 6), "review": m.review}
            out.append({"boundingBox": {"pts": f["box"], "score": f["score"]}, "value": value})
        answer(resp, {"detections": out})
