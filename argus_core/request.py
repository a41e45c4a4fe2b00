"""The ``POST /v1/video/<video_id>`` body (CONTRACT §1–§2) as msgspec Structs, and its validation.

``parse_request`` is the single entry point: it turns a JSON body (bytes or an already-decoded dict) into a
:class:`VideoRequest` with defaults applied, or raises the documented typed error.
"""

from __future__ import annotations

import math
from typing import Any, Iterable
from urllib.parse import urlsplit

import msgspec

from .errors import (
    BadOp,
    EmptyOp,
    InvalidDuration,
    InvalidInterval,
    InvalidMode,
    InvalidRequest,
    InvalidStartTime,
)

DEFAULT_INTERVAL = 5.0
DEFAULT_MAX_INTERVAL = 10.0
#: Schemes a request may name (CONTRACT §1). A bare path (no scheme) is a local file for embedders/CLI;
#: the HTTP adapter applies its own, stricter policy on top.
ALLOWED_SCHEMES = frozenset({"", "file", "http", "https", "rtmp", "rtsp", "srt"})
#: Upper bound of every time a request names (``ss``, ``t``, ``segment.interval``, ``live.timeout``), in s:
#: about 3 years, far beyond any video (max duration 6 h) or live job, and small enough that every time,
#: sum of times, ms offset (``int(t * 1000)``) and stream timestamp (``t / time_base``) stays finite and
#: inside int64 — a bigger value would raise OverflowError deep in the sampler or the aggregators.
MAX_SECONDS = 1e8
#: Smallest non-zero sampling interval and segment window: offsets are whole ms (CONTRACT §2), so a finer
#: grid only names the same frames again (and ``ss / 1e-300`` overflows).
MIN_INTERVAL_S = 0.001
#: Upper bound of a count a request names (``terminate`` thresholds).
MAX_COUNT = 10**9


class Attribute(msgspec.Struct, omit_defaults=True):
    id: str | None = None
    meta: Any = None


class Data(msgspec.Struct, omit_defaults=True):
    uri: str
    attribute: Attribute | None = None


class VFrame(msgspec.Struct, omit_defaults=True):
    """Sampling (CONTRACT §2). ``mode`` 0 = every ``interval`` s, 1 = keyframes (default)."""

    mode: int | None = None
    interval: float | None = None
    ss: float | None = None
    t: float | None = None


#: Bound of ``params.segment.min_cuts``: a label change may have to last this many cuts at most.
MAX_MIN_CUTS = 1000


class SegmentParams(msgspec.Struct, omit_defaults=True):
    """``params.segment`` (CONTRACT §5). ``min_cuts`` is our extension (§14, issue 9): in mode 0, a change
    of label set (or a run of dropped cuts) splits a segment only once it lasts ``min_cuts`` consecutive
    cuts; a shorter flicker joins the segment around it. 1 (the default) is §5 exactly."""

    mode: int = 0
    interval: float = 0.0
    min_cuts: int = 1


class Save(msgspec.Struct, omit_defaults=True):
    bucket: str | None = None
    zone: int | None = None
    prefix: str | None = None


class Live(msgspec.Struct, omit_defaults=True):
    """``params.live`` (issue 12): its presence marks an http(s) URI as a live stream (rtmp/rtsp/srt always
    are); ``timeout``: seconds without a frame before the job ends (FINISHED with what it has, FAILED if no
    frame ever came)."""

    timeout: float | None = None


class Params(msgspec.Struct, omit_defaults=True):
    async_: bool = msgspec.field(default=False, name="async")
    vframe: VFrame | None = None
    segment: SegmentParams | None = None
    save: Save | None = None
    hook_url: str | None = msgspec.field(default=None, name="hookURL")
    hook_uri: str | None = msgspec.field(default=None, name="hookURI")
    live: Live | None = None


class LabelSelect(msgspec.Struct, omit_defaults=True):
    """One entry of ``ops[].params.labels`` (CONTRACT §4)."""

    label: str
    select: int = 0
    score: float | None = None


class Terminate(msgspec.Struct, omit_defaults=True):
    """``ops[].params.terminate`` (CONTRACT §6): mode 1 counts cuts, mode 2 counts closed segments."""

    mode: int = 0
    labels: dict[str, int] = {}


class OpParams(msgspec.Struct, omit_defaults=True):
    labels: list[LabelSelect] = []
    terminate: Terminate | None = None
    ignore_empty_labels: bool = False
    other: dict[str, Any] = {}


class OpRequest(msgspec.Struct, omit_defaults=True):
    op: str
    hook_url: str | None = msgspec.field(default=None, name="hookURL")
    hook_uri: str | None = msgspec.field(default=None, name="hookURI")
    hook_url_segment: str | None = msgspec.field(default=None, name="hookURL_segment")
    segment_hook_url: str | None = None
    params: OpParams = msgspec.field(default_factory=OpParams)


class VideoRequest(msgspec.Struct, omit_defaults=True):
    """A validated request with defaults filled in (``vframe`` and ``segment`` are never None)."""

    data: Data
    params: Params = msgspec.field(default_factory=Params)
    ops: list[OpRequest] = []


class Sampling(msgspec.Struct, frozen=True):
    """Resolved sampling plan, the sampler's input: times in seconds, ``t`` None = to the end."""

    mode: int
    interval: float
    ss: float
    t: float | None
    max_gap: float = 10.0


def parse_request(
    body: bytes | str | dict[str, Any],
    known_ops: Iterable[str] | None = None,
    *,
    max_interval: float = DEFAULT_MAX_INTERVAL,
) -> VideoRequest:
    """Validate a request body; raise the documented :class:`~argus_core.errors.ArgusError` on bad input.

    ``known_ops`` is the set of ops this engine can run (ready models); ``None`` skips that check.
    """
    try:
        if isinstance(body, (bytes, str)):
            req = msgspec.json.decode(body, type=VideoRequest)
        else:
            req = msgspec.convert(body, type=VideoRequest)
    except RecursionError:
        raise InvalidRequest(detail="JSON nested too deeply", public=True) from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        if _ops_missing(body):
            raise EmptyOp(detail=str(exc)) from None
        raise InvalidRequest(detail=str(exc)) from None

    if not req.ops:
        raise EmptyOp()
    names = [o.op for o in req.ops]
    if known_ops is not None:
        known = set(known_ops)
        for name in names:
            if name not in known:
                raise BadOp(detail=f"unknown or unavailable op {name!r}")
    if len(set(names)) != len(names):
        raise InvalidRequest(detail="the same op twice")

    _check_uri(req.data.uri)
    _normalise_aliases(req)
    _resolve_vframe(req, max_interval)
    _check_segment(req)
    _check_live(req)
    for op in req.ops:
        _check_op_params(op.params)
    return req


def is_live_request(req: VideoRequest) -> bool:
    """Whether a request analyses a live stream (the rule is :func:`argus_core.media.source.is_live_uri`)."""
    from .media.source import is_live_uri

    return is_live_uri(req.data.uri, req.params.live is not None)


def sampling_of(req: VideoRequest, max_gap: float = 10.0) -> Sampling:
    """The sampler's plan for a validated request."""
    vf = req.params.vframe or VFrame()
    assert vf.mode is not None and vf.interval is not None
    return Sampling(mode=vf.mode, interval=vf.interval, ss=vf.ss or 0.0, t=vf.t or None, max_gap=max_gap)


def bounded(s: Sampling) -> Sampling:
    """``s`` with every time inside the bounds :func:`parse_request` enforces (a no-op for a parsed request;
    a guard for a :class:`Sampling` an embedder builds directly)."""
    interval = clamp(s.interval, MIN_INTERVAL_S, MAX_SECONDS)
    ss = clamp(s.ss, 0.0, MAX_SECONDS)
    t = clamp(s.t, 0.0, MAX_SECONDS) if s.t else None
    gap = clamp(s.max_gap, 0.0, MAX_SECONDS)
    if (interval, ss, t, gap) == (s.interval, s.ss, s.t, s.max_gap):
        return s
    return Sampling(mode=s.mode, interval=interval, ss=ss, t=t, max_gap=gap)


def _ops_missing(body: Any) -> bool:
    try:
        obj = msgspec.json.decode(body) if isinstance(body, (bytes, str)) else body
    except (msgspec.DecodeError, RecursionError):
        return False
    return isinstance(obj, dict) and not obj.get("ops")


def _check_uri(uri: str) -> None:
    if not uri or len(uri) > 4096:
        raise InvalidRequest(detail="data.uri empty or too long")
    scheme = urlsplit(uri).scheme.lower()
    # A Windows-style drive letter is not a scheme; treat one-letter schemes as paths.
    if len(scheme) == 1:
        scheme = ""
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidRequest(detail=f"scheme {scheme!r} not allowed")


def _normalise_aliases(req: VideoRequest) -> None:
    # CONTRACT §1: hookURI is an alias of hookURL, segment_hook_url of hookURL_segment.
    if req.params.hook_url is None and req.params.hook_uri is not None:
        req.params.hook_url = req.params.hook_uri
    req.params.hook_uri = None
    for op in req.ops:
        if op.hook_url is None and op.hook_uri is not None:
            op.hook_url = op.hook_uri
        if op.hook_url_segment is None and op.segment_hook_url is not None:
            op.hook_url_segment = op.segment_hook_url
        op.hook_uri = None
        op.segment_hook_url = None


def clamp(x: float, lo: float, hi: float) -> float:
    """``x`` inside ``[lo, hi]``; NaN gives ``lo``, ±inf the nearer bound. For code that takes a
    :class:`Sampling` or segment parameters from an embedder directly, past :func:`parse_request`."""
    if math.isnan(x):
        return lo
    return min(max(x, lo), hi)


def _time_ok(x: float | None) -> bool:
    """None, or a finite time in ``[0, MAX_SECONDS]``."""
    return x is None or (math.isfinite(x) and 0 <= x <= MAX_SECONDS)


def _resolve_vframe(req: VideoRequest, max_interval: float) -> None:
    vf = req.params.vframe or VFrame()
    mode = 1 if vf.mode is None else vf.mode
    if mode not in (0, 1):
        raise InvalidMode()
    interval = vf.interval
    if interval is not None and not (0 <= interval <= max_interval):
        raise InvalidInterval(max_interval, detail=f"interval {interval!r} outside [0, {max_interval:g}] s")
    if interval and interval < MIN_INTERVAL_S:
        raise InvalidInterval(max_interval, detail=f"interval below {MIN_INTERVAL_S} s (offsets are whole ms)")
    if not interval:
        interval = DEFAULT_INTERVAL
    if not _time_ok(vf.ss):
        raise InvalidStartTime(detail=f"ss must be in [0, {MAX_SECONDS:g}] s")
    if not _time_ok(vf.t):
        raise InvalidDuration(detail=f"t must be in [0, {MAX_SECONDS:g}] s")
    req.params.vframe = VFrame(mode=mode, interval=float(interval), ss=vf.ss or 0.0, t=vf.t or None)


def _check_segment(req: VideoRequest) -> None:
    seg = req.params.segment or SegmentParams()
    if seg.mode not in (0, 1):
        raise InvalidRequest(detail="segment.mode must be 0 or 1")
    if seg.mode == 1 and not (MIN_INTERVAL_S <= seg.interval <= MAX_SECONDS):
        raise InvalidRequest(detail=f"segment.interval must be in [{MIN_INTERVAL_S}, {MAX_SECONDS:g}] s in mode 1")
    if not _time_ok(seg.interval):
        raise InvalidRequest(detail=f"segment.interval must be in [0, {MAX_SECONDS:g}] s")
    if isinstance(seg.min_cuts, bool) or not 1 <= seg.min_cuts <= MAX_MIN_CUTS:
        raise InvalidRequest(detail=f"segment.min_cuts must be an integer in [1, {MAX_MIN_CUTS}]")
    req.params.segment = seg
    live = req.params.live
    if live is not None and live.timeout is not None and not (0 < live.timeout <= MAX_SECONDS):
        raise InvalidRequest(detail=f"live.timeout must be in (0, {MAX_SECONDS:g}] s")


def _check_live(req: VideoRequest) -> None:
    live = req.params.live
    if live is not None and live.timeout is not None and not (math.isfinite(live.timeout) and live.timeout >= 0):
        raise InvalidRequest(detail="params.live.timeout must be a number of seconds >= 0")


def _check_op_params(p: OpParams) -> None:
    for entry in p.labels:
        if entry.score is not None and not math.isfinite(entry.score):
            raise InvalidRequest(detail="non-finite label score")
    if p.terminate is not None:
        for label, limit in p.terminate.labels.items():
            if not 0 <= limit <= MAX_COUNT:
                raise InvalidRequest(detail=f"terminate max for {label!r} not in [0, {MAX_COUNT}]")
