"""Every message between the engine's parent and its child processes: one msgspec Struct each.

Pixels never travel here (they go through the shared-memory ring); these carry slot indexes, job keys,
offsets and small results. A :class:`Channel` wraps each child's pipe and encodes with msgpack, decoding
into the tagged union of what that direction may carry, so a message of the wrong shape fails loudly at
the boundary instead of three functions later.

::

    parent → decoder   DecodeJob | GrantSlots | StopJob | Exit
    decoder → parent   VideoMeta | FrameReady | DecodeDone | LiveStatus | LiveBreak
    parent → worker    JobParams | FrameBatch | ForgetJob | Exit
    worker → parent    WorkerReady | Results
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Generic, TypeVar, Union

import msgspec

from ..errors import ErrorWire
from ..media.renditions import FrameSpec
from ..request import OpParams, Sampling
from ..result import CutOutput


# -- parent → decoder ---------------------------------------------------------------------------------
class LivePlan(msgspec.Struct):
    """How a live job runs (issue 12): the stall bound, ``timeout_s`` without a frame before it ends (0: never),
    the operator's ``max_s`` (0: none) and ``start_ms``, where the job clock starts (a resumed job continues)."""

    stall_s: float
    timeout_s: float = 0.0
    max_s: float = 0.0
    start_ms: int = 0
    http_live: bool = False  #: an http(s) URI the request marked live (``params.live``)


class Sides(msgspec.Struct):
    """The frames ``ms`` before and after each cut, in the renditions ``specs``, written into the cut's own slot
    after its views (ORIGINAL-BEHAVIOUR.md §2, "Pulp special case": pulp averages t−500, t, t+500 ms)."""

    ms: int
    specs: tuple[FrameSpec, ...]


class DecodeJob(msgspec.Struct, tag=True):
    """Decode one video into granted slots. ``frame_threads`` None: the sampler decides per file."""

    key: int
    uri: str
    sampling: Sampling
    specs: tuple[FrameSpec, ...]
    timeout: float
    max_frames: int
    max_duration: float
    frame_threads: bool | None = None
    live: LivePlan | None = None
    sides: Sides | None = None


class GrantSlots(msgspec.Struct, tag=True):
    slots: list[int]


class StopJob(msgspec.Struct, tag=True):
    key: int


class Exit(msgspec.Struct, tag=True):
    pass


# -- decoder → parent ---------------------------------------------------------------------------------
class VideoMeta(msgspec.Struct, tag=True):
    key: int
    duration_ms: int | None
    width: int
    height: int


class FrameReady(msgspec.Struct, tag=True):
    """A frame of job ``key`` (its ``seq``-th) is in ``slot``."""

    slot: int
    key: int
    seq: int
    offset_ms: int


class DecodeDone(msgspec.Struct, tag=True):
    """The job's decoding ended after ``frames`` frames; ``returned``: granted slots it did not use."""

    key: int
    frames: int
    error: ErrorWire | None
    returned: list[int]


class LiveStatus(msgspec.Struct, tag=True):
    """A live job's connection (sent on every change and at most once a second with frames)."""

    key: int
    connected: bool
    reconnects: int
    last_frame_at: float | None  #: wall time (epoch s) of the last frame sent
    lag_ms: int | None  #: job clock − the last frame's offset when it was sent
    reason: str = ""  #: why it is not connected
    offset_ms: int | None = None  #: the last frame's offset (a resumed job's clock starts past it)
    source_pts_ms: int | None = None  #: the last frame's own timestamp in the stream (ms), None without one


class LiveBreak(msgspec.Struct, tag=True):
    """The live job clock re-anchored before frame ``seq`` (at ``offset_ms``): open segments close there."""

    key: int
    seq: int
    offset_ms: int
    reason: str


# -- parent → worker ----------------------------------------------------------------------------------
class JobParams(msgspec.Struct, tag=True):
    """What a worker needs to run a job's frames: per-op params and the slot's rendition order."""

    key: int
    params: dict[str, OpParams]
    specs: tuple[FrameSpec, ...]
    sides: tuple[FrameSpec, ...] = ()  #: the neighbour renditions after ``specs`` (:class:`Sides`)


class FrameWork(msgspec.Struct, array_like=True):
    slot: int
    key: int
    seq: int
    ops: tuple[str, ...]  #: the job's ops still active (a terminated op is not run)


class FrameBatch(msgspec.Struct, tag=True):
    items: list[FrameWork]


class ForgetJob(msgspec.Struct, tag=True):
    key: int


# -- worker → parent ----------------------------------------------------------------------------------
class WorkerInfo(msgspec.Struct):
    pid: int
    device: str
    cupy_imported: bool


class WorkerReady(msgspec.Struct, tag=True):
    """Models loaded; ``problems``: ops that cannot serve here, with the reason."""

    info: WorkerInfo
    problems: dict[str, str]


class FrameResult(msgspec.Struct, array_like=True):
    slot: int
    key: int
    seq: int
    outputs: dict[str, CutOutput]
    error: ErrorWire | None


class Results(msgspec.Struct, tag=True):
    items: list[FrameResult]


ToDecoder = Union[DecodeJob, GrantSlots, StopJob, Exit]
FromDecoder = Union[VideoMeta, FrameReady, DecodeDone, LiveStatus, LiveBreak]
ToWorker = Union[JobParams, FrameBatch, ForgetJob, Exit]
FromWorker = Union[WorkerReady, Results]

def _enc_hook(obj: object) -> object:
    """numpy scalars and small arrays in op results (``np.float32`` scores, ``np.bool_`` flags) as plain
    values: what pickling used to carry, and what the JSON layer would turn them into anyway."""
    item = getattr(obj, "tolist", None)
    if item is not None:
        return item()
    raise NotImplementedError(f"cannot send {type(obj).__name__} between processes")


In = TypeVar("In")
Out = TypeVar("Out")


class Channel(Generic[In, Out]):
    """One end of a child's pipe: sends ``Out`` messages, receives ``In`` messages (msgpack)."""

    def __init__(self, conn: Connection, incoming: object) -> None:
        self.conn = conn
        self._enc = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
        self._dec = msgspec.msgpack.Decoder(incoming)

    def send(self, msg: Out) -> None:
        self.conn.send_bytes(self._enc.encode(msg))

    def recv(self) -> In:
        return self._dec.decode(self.conn.recv_bytes())

    def poll(self, timeout: float = 0.0) -> bool:
        return self.conn.poll(timeout)

    def fileno(self) -> int:
        return self.conn.fileno()

    def close(self) -> None:
        self.conn.close()


def decoder_side(conn: Connection) -> "Channel[ToDecoder, FromDecoder]":
    return Channel(conn, ToDecoder)


def worker_side(conn: Connection) -> "Channel[ToWorker, FromWorker]":
    return Channel(conn, ToWorker)


def parent_of_decoder(conn: Connection) -> "Channel[FromDecoder, ToDecoder]":
    return Channel(conn, FromDecoder)


def parent_of_worker(conn: Connection) -> "Channel[FromWorker, ToWorker]":
    return Channel(conn, FromWorker)
