"""The HTTP bodies of the service as msgspec Structs (CONTRACT §1, §7–§9, §12): request bodies are decoded into
them at the edge (:func:`argus_http.edge.read_body`), and the OpenAPI document is generated from them
(:mod:`argus_http.openapi`), so the two cannot disagree.

Request bodies are as strict as the service always was and no stricter: where a field was coerced or
ignored before (``lease``, ``retryable``, a face's ``meta``), it is typed ``Any`` and read as before.
Response Structs describe what the routes answer; the OpenAPI tests validate real answers against them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from argus_core.request import VideoRequest
from argus_core.result import OpResult

from .queue import abstracts
from .queue.protocol import LiveState
from .queue.tables import STATUSES

Status = Literal["WAITING", "DOING", "RESCHEDULED", "FINISHED", "FAILED", "CANCELLED"]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]
Kind = Literal["video", "vframe", "abstract"]
Time = Annotated[str, Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", extra_json_schema={"format": "date-time"})]
Object = dict[str, Any]
Uid = Union[int, str]


def _doc(text: str) -> Meta:
    return Meta(description=text)


# -- requests ----------------------------------------------------------------------------------------------
class QueueSubmit(Struct):
    """``POST /v1/jobs``: a job for the queue API (CONTRACT §8)."""

    job: Annotated[Object, Meta(description="a video request",
                                extra_json_schema={"$ref": "#/components/schemas/VideoRequest"})]
    uid: Uid = ""


class LeaseToken(Struct):
    """``touch`` / ``release``; the token may come as ``?lease=`` instead."""

    lease: Annotated[Any, _doc("lease token; send it with touch/finish")] = None


class Finish(Struct):
    lease: Annotated[Any, _doc("lease token")] = None
    result: Object | None = None
    error: str | None = None
    retryable: Any = False


class SegmentEvent(Struct, tag_field="type", tag="segment"):
    op: str
    index: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0  #: the op's segment number (issue 10: was unchecked)
    result: Object | None = None


class OpEvent(Struct, tag_field="type", tag="op"):
    op: str
    result: Object | None = None


class CallbackEvent(Struct, tag_field="type", tag="callback"):
    """A vframe callback (begin/cuts/end), only below the task's callback base."""

    name: str
    url: str
    body: Object | None = None


class ProgressEvent(Struct, tag_field="type", tag="progress"):
    """How far a task is (an abstract's ``percent``, CONTRACT §12; the queue never lowers it), and a live job's
    connection (issue 12)."""

    percent: Annotated[int, Meta(ge=0, le=100)]
    duration_ms: Annotated[int, Meta(ge=0)] | None = None
    live: LiveState | None = None


Event = Union[SegmentEvent, OpEvent, CallbackEvent, ProgressEvent]


class Events(Struct):
    events: list[Event]
    lease: Annotated[Any, _doc("lease token")] = None


KillOp = Union[Literal["kill"], None]


class Kill(Struct):
    """The kill of ``POST /v1/jobs/<kind>/<id>`` (as JSON; a form ``op=kill`` or ``?op=kill`` also do)."""

    op: KillOp = None


class GroupCreate(Struct):
    meta: Object | None = None


class FaceAttribute(Struct):
    name: str
    id: str | None = None
    meta: Annotated[Any, _doc("an object; anything else is ignored")] = None


class FaceData(Struct):
    uri: str
    attribute: FaceAttribute


class FaceAdd(Struct):
    data: FaceData


class FaceRemove(Struct):
    ids: list[Any] | None = None
    names: list[Any] | None = None


class ImageData(Struct):
    uri: str


class SearchParams(Struct):
    threshold: Annotated[float, Meta(ge=0, le=1)] = 0.6


class FaceSearch(Struct):
    data: ImageData
    params: SearchParams | None = None


class VframeParams(Struct):
    mode: int | None = None
    interval: float | None = None
    ss: float | None = None
    t: float | None = None


Layer = Annotated[int, Meta(ge=0, le=3)]
VideoType = Literal["news", "tv_play", "tv_show", "general"]


class AbstractSubmit(Struct):
    """``PUT /v1/videoAbstract`` (CONTRACT §12, the seed's fields; ``language`` is the §14 extra). Stored as
    the task's request; :mod:`argus_http.resources.abstract` checks what a type cannot say."""

    source: Annotated[str, Meta(min_length=1, max_length=1024, description="http(s) URL, or file:// below "
                                                                         "the media root; the task's identity")]
    auth: Annotated[str | None, _doc("URL parameters appended with ? or & to fetch it; never echoed")] = None
    notification: Annotated[str | None, _doc("a notification name configured on the server")] = None
    priority: Annotated[int, Meta(ge=0, le=100, description="higher runs first; equal: creation order")] = 0
    videoType: VideoType = "general"
    enablePersonName: bool = False
    enableAbstractLayers: Annotated[list[Layer], Meta(min_length=1, description=(
        "0 programme, 1 clips, 2 scenes, 3 shots"))] = msgspec.field(default_factory=lambda: [0, 1, 2])
    language: Literal["zh", "en"] = "zh"


class VframeTask(Struct):
    """``POST /v1/vframe`` (CONTRACT §9). Validated by :func:`argus_http.jobs.vframe.validate`."""

    data: ImageData
    callback: Annotated[str, _doc("base URL; begin/cuts/end are appended")]
    id: str | None = None
    params: VframeParams | None = None


# -- responses ---------------------------------------------------------------------------------------------
class Error(Struct, forbid_unknown_fields=True):
    error: str  #: the documented message (CONTRACT §1/§2/§7), exactly
    detail: str | UnsetType = UNSET  #: why, for 4xx answers


class AsyncAccepted(Struct, forbid_unknown_fields=True):
    job: str


class LiveView(Struct, forbid_unknown_fields=True):
    """A running live job's source connection (issue 12), as its worker last reported it."""

    connected: bool
    reconnects: int
    last_frame_at: Time | None
    lag_ms: int | None


class Job(Struct, forbid_unknown_fields=True):
    id: str
    vid: str
    request: Object
    status: Status
    created_at: Time
    updated_at: Time
    result: Any | UnsetType = UNSET
    #: CONTRACT §14: the whole video's verdict, once the job finished
    suggestion: Literal["pass", "review", "block"] | UnsetType = UNSET
    error: str | UnsetType = UNSET
    #: issue 12: while a live job runs
    live: LiveView | UnsetType = UNSET


class JobSummary(Struct, forbid_unknown_fields=True):
    id: str
    status: Status
    created_at: Time
    updated_at: Time


class KillResult(Struct, forbid_unknown_fields=True):
    status: Status
    created_at: Time
    updated_at: Time


class QueueId(Struct, forbid_unknown_fields=True):
    id: str


class LeaseView(Struct):
    """One leased job of ``GET /v1/jobs?number=N``."""

    id: str
    uid: Uid
    job: Object
    timeout: int
    lease: Annotated[str, _doc("lease token; send it with touch/finish")]
    kind: Kind = "video"
    vid: str = ""
    attempts: int = 1
    #: a rescheduled live job: its clock continues past this offset (issue 12)
    resume_ms: int = 0


class Touched(Struct):
    timeout: int


class Empty(Struct, forbid_unknown_fields=True):
    pass


class Group(Struct):
    group: str
    faces: int | UnsetType = UNSET
    version: int | UnsetType = UNSET
    created: Any = UNSET
    updated: Any = UNSET
    meta: Object | None | UnsetType = UNSET
    face_list: list[Object] | UnsetType = UNSET


class Removed(Struct):
    removed: int


class Box(Struct):
    pts: list[Any]
    score: float


class FaceMatch(Struct):
    id: str | None
    name: str
    score: float
    review: bool


class FaceFound(Struct):
    boundingBox: Box
    value: FaceMatch | None


class FaceSearchResult(Struct):
    detections: list[FaceFound]


class Health(Struct):
    status: str
    database: bool
    engine: bool
    ops: list[str]
    uptime_s: float | UnsetType = UNSET
    #: the engine's readiness (``Engine.health``): ``ok`` plus what is up (issue 10)
    engine_health: dict[str, Any] | UnsetType = UNSET


AbstractStatus = Literal["PROVISIONING", "PROCESSING", "FINISHED", "ERROR", "CANCELLED"]
assert AbstractStatus.__args__ == abstracts.STATUSES  # type: ignore[attr-defined]
Percent = Annotated[int, Meta(ge=0, le=100)]


class AbstractAccepted(Struct, forbid_unknown_fields=True):
    """The ``PUT /v1/videoAbstract`` answer (the seed's)."""

    source: str
    status: AbstractStatus
    videoType: VideoType
    percent: Percent
    createTime: Time
    notification: str | UnsetType = UNSET


class ClipResult(Struct):
    """One abstract item; level-3 items carry the §14 extras too (confidence, frames, timecodes, transition,
    keyframeInMS; technical cues have a ``type``)."""

    contentId: Annotated[str, _doc("<taskId>_<level>_<index>")]
    level: Layer
    startTimeInMS: int
    endTimeInMS: int
    clipAbstract: str


class AbstractFailure(Struct, forbid_unknown_fields=True):
    code: Literal["InvalidMedia", "InternalError", "TimeOut"]
    message: str


class AbstractView(Struct, forbid_unknown_fields=True):
    """``GET /v1/videoAbstract?source=`` (the seed's response; ``language`` the §14 extra)."""

    taskId: str
    source: str
    status: AbstractStatus
    percent: Annotated[Percent, _doc("grows monotonically")]
    videoType: VideoType
    createTime: Time
    language: Literal["zh", "en"]
    clipResults: list[ClipResult]
    durationInSecond: int | UnsetType = UNSET
    notification: str | UnsetType = UNSET
    startTime: Time | UnsetType = UNSET
    publishTime: Time | UnsetType = UNSET
    error: AbstractFailure | UnsetType = UNSET


CancelFlag = Annotated[str, _doc("present (no value): cancel the source's task")]

VideoResult = Annotated[dict[str, OpResult], _doc("op name → {labels, segments}")]

#: Everything the document names, in the order of its components.
DOCUMENTED: tuple[Any, ...] = (
    Error, VideoRequest, OpResult, AsyncAccepted, Job, JobSummary, KillResult, VframeTask, QueueSubmit, QueueId,
    LeaseView, LeaseToken, Finish, Events, Touched, Empty, Kill, Group, GroupCreate, FaceAdd, FaceRemove,
    Removed, FaceSearch, FaceSearchResult, Health, AbstractSubmit, AbstractAccepted, AbstractView,
)
