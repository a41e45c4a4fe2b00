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

With auth on, groups are per access key like jobs: the stored name is ``u<hex(uid)>.<gid>``, so one key
never sees or searches another's gallery, and ``ops[].params.other.group`` of ``face_group_search`` is
rewritten the same way before the engine runs (:func:`scoped_request`).
"""

from __future__ import annotations

import copy
from typing import Any

import falcon

from argus_core.errors import ArgusError, InvalidRequest

from .sources import fetch_bytes

SCOPED_OPS = frozenset({"face_group_search"})


class FacesUnavailable(ArgusError):
    status = 503
    message = "face models are not installed"


def scoped(gid: str, uid: str | None) -> str:
    """The stored group name for a caller's group name (unchanged when auth is off)."""
    return gid if not uid else f"u{uid.encode().hex()}.{gid}"


def unscoped(name: str, uid: str | None) -> str | None:
    """The caller's name of a stored group, or None when it is not the caller's."""
    if not uid:
        return name
    prefix = f"u{uid.encode().hex()}."
    return name[len(prefix):] if name.startswith(prefix) else None


def scoped_request(body: dict[str, Any], uid: str | None) -> dict[str, Any]:
    """A copy of a video request whose gallery names point at the caller's galleries."""
    if not uid or not any(isinstance(o, dict) and o.get("op") in SCOPED_OPS for o in body.get("ops") or []):
        return body
    out = copy.deepcopy(body)
    for op in out["ops"]:
        other = ((op.get("params") or {}).get("other") or {}) if isinstance(op, dict) else {}
        if op.get("op") in SCOPED_OPS and isinstance(other.get("group"), str):
            other["group"] = scoped(other["group"], uid)
    return out


def _models(fn: Any, *args: Any, **kw: Any) -> Any:
    from argus_core.runtime.manifest import ModelError

    try:
        return fn(*args, **kw)
    except ModelError as exc:
        raise FacesUnavailable(detail=str(exc)) from None


def _public(info: dict[str, Any], gid: str) -> dict[str, Any]:
    return {**info, "group": gid}


class GroupsResource:
    def __init__(self, svc: Any) -> None:
        self.svc = svc

    def _store(self) -> Any:
        if self.svc.engine is None or not hasattr(self.svc.engine, "galleries"):
            raise FacesUnavailable("face galleries are not available on this server")
        return self.svc.engine.galleries

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .app import _json, _uid

        uid = _uid(req)
        out = []
        for g in self._store().list_groups():
            name = unscoped(g["group"], uid)
            if name is not None:
                out.append(_public(g, name))
        _json(resp, out)


class GroupResource(GroupsResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:
        from .app import _body_json, _json, _uid

        body = _body_json(req, required=False)
        meta = body.get("meta") if isinstance(body, dict) else None
        if meta is not None and not isinstance(meta, dict):
            raise InvalidRequest(detail="meta must be an object")
        info = self._store().create_group(scoped(gid, _uid(req)), meta=meta)
        _json(resp, _public(info, gid))

    def on_get(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:  # type: ignore[override]
        from .app import _json, _uid

        store, name = self._store(), scoped(gid, _uid(req))
        info = store.group_info(name)
        _json(resp, {**_public(info, gid), "face_list": store.list_faces(name)})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:
        from .app import _json, _uid

        self._store().delete_group(scoped(gid, _uid(req)))
        _json(resp, {})

    def on_post_add(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:
        from .app import _body_json, _json, _uid

        body = _body_json(req)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("uri"), str):
            raise InvalidRequest(detail="expected {data:{uri, attribute:{name}}}")
        attr = data.get("attribute") or {}
        if not isinstance(attr, dict) or not isinstance(attr.get("name"), str):
            raise InvalidRequest(detail="data.attribute.name is required")
        fid = attr.get("id")
        if fid is not None and not isinstance(fid, str):
            raise InvalidRequest(detail="data.attribute.id must be a string")
        image = fetch_bytes(data["uri"], self.svc.s, self.svc.guard)
        store = self._store()
        record = _models(store.add_face, scoped(gid, _uid(req)), image, attr["name"], id=fid,
                         meta=attr.get("meta") if isinstance(attr.get("meta"), dict) else None)
        _json(resp, record)

    def on_post_remove(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:
        from .app import _body_json, _json, _uid

        body = _body_json(req)
        if not isinstance(body, dict):
            raise InvalidRequest(detail="body must be an object")
        ids, names = body.get("ids") or [], body.get("names") or []
        if not isinstance(ids, list) or not isinstance(names, list) or not (ids or names):
            raise InvalidRequest(detail="expected {ids:[...]} and/or {names:[...]}")
        store, name = self._store(), scoped(gid, _uid(req))
        removed = 0
        for fid in ids:
            store.remove_face(name, str(fid))
            removed += 1
        for person in names:
            removed += store.remove_name(name, str(person))
        _json(resp, {"removed": removed})

    def on_post_search(self, req: falcon.Request, resp: falcon.Response, gid: str) -> None:
        from .app import _body_json, _json, _uid

        body = _body_json(req)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("uri"), str):
            raise InvalidRequest(detail="expected {data:{uri}}")
        params = body.get("params") or {}
        threshold = params.get("threshold", 0.6) if isinstance(params, dict) else 0.6
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise InvalidRequest(detail="threshold must be in [0, 1]")
        image = fetch_bytes(data["uri"], self.svc.s, self.svc.guard)
        store, name = self._store(), scoped(gid, _uid(req))
        store.group_info(name)  # 404 before any model work
        faces = _models(store.search_image, name, image, float(threshold))
        out = []
        for f in faces:
            m = f["match"]
            value = None if m is None else {"id": m.id, "name": m.name if m.matched else "",
                                            "score": round(m.score, 6), "review": m.review}
            out.append({"boundingBox": {"pts": f["box"], "score": f["score"]}, "value": value})
        _json(resp, {"detections": out})
