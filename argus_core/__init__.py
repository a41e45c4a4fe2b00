"""Argus engine: sample frames from videos, run image models on them, merge the verdicts into segments.

Importable with no web stack::

    from argus_core import Engine, aggregate

    with Engine() as engine:
        result = engine.analyze({"data": {"uri": "movie.mp4"}, "ops": [{"op": "pulp"}]})
"""

from .aggregate import aggregate
from .pipeline.engine import Engine
from .pipeline.job import Job
from .errors import ArgusError
from .events import JobFinished, OpFinished, Progress, SegmentClosed
from .request import VideoRequest, parse_request

__all__ = [
    "ArgusError", "Engine", "Job", "JobFinished", "OpFinished", "Progress", "SegmentClosed",
    "VideoRequest", "aggregate", "parse_request",
]
__version__ = "0.1.0"
