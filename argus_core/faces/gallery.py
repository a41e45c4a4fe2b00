"""Face galleries ("groups"): named sets of enrolled faces, kept on disk, searched by exact cosine.

Layout under the galleries folder (``options["galleries_dir"]``, else ``<options["data_dir"]>/galleries``,
else ``$ARGUS_GALLERIES_DIR``, else ``~/.argus/galleries``)::

    <group>/index.json        {"format", "group", "version", "created", "updated", "meta", "dim", "faces": n,
                               "shards": [{"file": "s-<uuid>.npy", "faces": "s-<uuid>.json", "rows"}]}
    <group>/s-<uuid>.npy      float32 [rows, dim] unit descriptors of one shard
    <group>/s-<uuid>.json     [{"id", "name", "meta", "added", …}] the records of those rows, in order
    <group>/.lock             writers' lock (flock)

Writes are atomic: a changed shard is written as *new* files, then ``index.json`` is replaced
(``os.replace``), then the files it no longer names are deleted. A reader therefore always sees a complete
version; if it loses the race with a deletion it simply reads the index again. Shards hold at most
:data:`SHARD_ROWS` faces, so adding or removing one face rewrites one shard (≤ 32 MiB and its records)
however large the gallery, and a reader reloads only the shards that changed.

Readers memory-map the shards (``np.load(mmap_mode="r")``): every inference worker shares one copy in the
page cache. :meth:`GalleryStore.gallery` re-checks ``index.json`` (one ``stat``: inode + mtime + size) on
each call and reloads only when it changed, so a worker sees an added face on its next batch.

Search is exact: the queries' unit descriptors times the gallery matrix (float32 BLAS), shard by shard,
keeping the best rows per query. ``bench/bench_gallery.py`` measures it on 100k faces.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import (
    BadImage,
    FaceExists,
    FaceNotFound,
    GroupExists,
    GroupNotFound,
    InvalidFace,
    InvalidGroup,
    ManyFaces,
    NoFace,
)

log = logging.getLogger("argus.gallery")

FORMAT = 1
DIM = 1024
SHARD_ROWS = 8192
DEFAULT_THRESHOLD = 0.6
#: a match closer than this to the threshold, or to a different person's best score, is flagged ``review``
REVIEW_MARGIN = 0.05
MAX_NAME = 256
_GROUP_RE = re.compile(r"^\w[\w.-]{0,127}$")
_FACE_ID_RE = re.compile(r"^[\w.:-]{1,128}$")
_INDEX = "index.json"


def default_galleries_dir(options: dict[str, Any] | None = None) -> Path:
    opts = options or {}
    if opts.get("galleries_dir"):
        return Path(opts["galleries_dir"]).expanduser()
    if opts.get("data_dir"):
        return Path(opts["data_dir"]).expanduser() / "galleries"
    if os.environ.get("ARGUS_GALLERIES_DIR"):
        return Path(os.environ["ARGUS_GALLERIES_DIR"]).expanduser()
    return Path.home() / ".argus" / "galleries"


def check_group_name(group: Any) -> str:
    if not isinstance(group, str) or not _GROUP_RE.match(group):
        raise InvalidGroup(detail=f"group name {group!r}")
    return group


@dataclass(frozen=True)
class Match:
    """The best gallery face for one query descriptor."""

    index: int  # row in the gallery
    id: str
    name: str
    score: float  # cosine similarity
    meta: dict
    matched: bool  # score ≥ threshold
    review: bool
    runner_up: float = -1.0  # best cosine of a face with another name (-1: none among the top 16)


def needs_review(score: float, runner_up: float, threshold: float) -> bool:
    """A match to double-check: within :data:`REVIEW_MARGIN` of the threshold, or of another person."""
    if score < threshold:
        return False
    return score < threshold + REVIEW_MARGIN or (runner_up >= threshold and score - runner_up < REVIEW_MARGIN)


class Gallery:
    """An immutable loaded version of one group: face records plus memory-mapped descriptor shards."""

    def __init__(self, group: str, index: dict, shards: list[np.ndarray], records: list[list[dict]],
                 stamp: tuple = ()) -> None:
        self.group = group
        self.index = index
        self.shard_files = [s["file"] for s in index["shards"]]
        self.version: int = index["version"]
        self.dim: int = index.get("dim", DIM)
        self.meta: dict = index.get("meta", {})
        self.shards = shards
        self.records = records  # per shard
        self.faces: list[dict] = [r for part in records for r in part]
        self.stamp = stamp
        self.ids = [f["id"] for f in self.faces]
        self.names = [f["name"] for f in self.faces]
        # face rows grouped by name, for "best score of a different person"
        self._name_codes = np.array(_codes(self.names), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.faces)

    def matrix(self) -> np.ndarray:
        """All descriptors as one array (a copy when there are several shards)."""
        if not self.shards:
            return np.zeros((0, self.dim), np.float32)
        return self.shards[0] if len(self.shards) == 1 else np.concatenate(self.shards)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Cosine similarities ``[Q, N]`` of unit query descriptors with every face."""
        q = _queries(queries, self.dim)
        if not self.shards:
            return np.zeros((len(q), 0), np.float32)
        return np.concatenate([q @ s.T for s in self.shards], axis=1)

    def top(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores ``[Q, k]`` of the k most similar faces per query, best first (exact)."""
        q = _queries(queries, self.dim)
        n = len(self)
        k = max(0, min(k, n))
        if k == 0:
            return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
        best_i = np.zeros((len(q), 0), np.int64)
        best_s = np.zeros((len(q), 0), np.float32)
        base = 0
        for shard in self.shards:
            sims = q @ shard.T  # (Q, rows) float32, BLAS
            kk = min(k, sims.shape[1])
            if kk < sims.shape[1]:
                part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            else:
                part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
            cand_s = np.take_along_axis(sims, part, axis=1)
            best_i = np.concatenate([best_i, part + base], axis=1)
            best_s = np.concatenate([best_s, cand_s], axis=1)
            if best_i.shape[1] > k:
                keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
                best_i = np.take_along_axis(best_i, keep, axis=1)
                best_s = np.take_along_axis(best_s, keep, axis=1)
            base += len(shard)
        order = np.argsort(-best_s, axis=1, kind="stable")
        return np.take_along_axis(best_i, order, axis=1), np.take_along_axis(best_s, order, axis=1)

    def search(self, queries: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[Match | None]:
        """Per query, the best face (``None`` when the gallery is empty); ``matched`` when its cosine is
        ≥ ``threshold``; ``review`` when a match is within :data:`REVIEW_MARGIN` of the threshold or of
        the best face of a different person."""
        q = _queries(queries, self.dim)
        if len(self) == 0:
            return [None] * len(q)
        idx, sc = self.top(q, k=min(len(self), 16))
        out: list[Match | None] = []
        for row_i, row_s in zip(idx, sc):
            i, s = int(row_i[0]), float(row_s[0])
            other = [float(x) for j, x in zip(row_i[1:], row_s[1:]) if self._name_codes[j] != self._name_codes[i]]
            runner_up = other[0] if other else -1.0
            f = self.faces[i]
            out.append(Match(index=i, id=f["id"], name=f["name"], score=s, meta=f.get("meta") or {},
                             matched=s >= threshold, review=needs_review(s, runner_up, threshold),
                             runner_up=runner_up))
        return out


def _codes(names: Sequence[str]) -> list[int]:
    table: dict[str, int] = {}
    return [table.setdefault(n, len(table)) for n in names]


def _queries(queries: np.ndarray, dim: int) -> np.ndarray:
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or q.shape[1] != dim:
        raise InvalidFace(detail=f"query shape {q.shape}, expected [*, {dim}]")
    return q


def _unit(vectors: np.ndarray, dim: int) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != dim or not np.isfinite(v).all():
        raise InvalidFace(detail=f"embedding shape {v.shape}, expected [*, {dim}] finite")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if (norms < 1e-6).any():
        raise InvalidFace(detail="zero embedding")
    return np.ascontiguousarray(v / norms, dtype=np.float32)


class GalleryStore:
    """Every gallery under one folder. Writers (create/add/remove/delete) lock per group and may run in
    any process; readers (:meth:`gallery`, :meth:`search`) are lock-free and reload on change.

    ``pipeline``: a :class:`argus_core.faces.FacePipeline` for :meth:`add_face`; created on first use from
    ``models_dir`` when not given (loading three models takes about a second).
    """

    def __init__(self, root: str | Path | None = None, *, options: dict[str, Any] | None = None,
                 models_dir: str | Path | None = None, pipeline: Any = None, threads: int = 1) -> None:
        self.root = Path(root).expanduser() if root is not None else default_galleries_dir(options)
        self.options = dict(options or {})
        self.models_dir = models_dir
        self.threads = threads
        self._pipeline = pipeline
        self._pipeline_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._cache: dict[str, Gallery] = {}
        self._cache_lock = threading.Lock()

    # -- paths and locks -------------------------------------------------------------------------------
    def _dir(self, group: str) -> Path:
        return self.root / check_group_name(group)

    @contextmanager
    def _locked(self, group: str) -> Iterator[Path]:
        d = self._dir(group)
        if not (d / _INDEX).is_file():
            raise GroupNotFound(detail=group)
        with self._write_lock, open(d / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                if not (d / _INDEX).is_file():  # deleted while we waited
                    raise GroupNotFound(detail=group)
                yield d
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- groups ----------------------------------------------------------------------------------------
    def create_group(self, group: str, meta: dict | None = None) -> dict:
        """Create an empty gallery; :class:`GroupExists` when the name is taken."""
        d = self._dir(group)
        self.root.mkdir(parents=True, exist_ok=True)
        if (d / _INDEX).is_file():
            raise GroupExists(detail=group)
        now = time.time()
        index = {"format": FORMAT, "group": group, "version": 1, "created": now, "updated": now,
                 "meta": dict(meta or {}), "dim": DIM, "faces": 0, "shards": []}
        # built aside, then renamed into place: the group appears complete or not at all (a leftover empty
        # folder is replaced; a concurrent creator's non-empty one makes the rename fail)
        tmp = self.root / f".creating-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _write_json(tmp / _INDEX, index)
            os.rename(tmp, d)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if (d / _INDEX).is_file() or d.exists():
                raise GroupExists(detail=group) from None
            raise
        return _summary(index)

    def list_groups(self) -> list[dict]:
        """``[{group, faces, version, created, updated, meta}]`` sorted by name."""
        out = []
        if not self.root.is_dir():
            return out
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and _GROUP_RE.match(d.name) and (d / _INDEX).is_file():
                try:
                    out.append(_summary(_read_json(d / _INDEX)))
                except (OSError, ValueError):
                    continue  # deleted meanwhile
        return out

    def group_info(self, group: str) -> dict:
        return _summary(self._read_index(group))

    def has_group(self, group: str) -> bool:
        try:
            return (self._dir(group) / _INDEX).is_file()
        except InvalidGroup:
            return False

    def delete_group(self, group: str) -> None:
        """Remove a gallery and its files; :class:`GroupNotFound` when there is none."""
        d = self._dir(group)
        with self._locked(group):
            trash = self.root / f".deleted-{group}-{uuid.uuid4().hex}"
            os.replace(d, trash)
        shutil.rmtree(trash, ignore_errors=True)
        with self._cache_lock:
            self._cache.pop(group, None)

    # -- faces -------------------------------------------------------------------------------------------
    def list_faces(self, group: str) -> list[dict]:
        """Face records of a gallery in row order (no descriptors)."""
        return list(self.gallery(group).faces)

    def add_face(self, group: str, image: Any, name: str, *, id: str | None = None, meta: dict | None = None,
                 min_score: float | None = None) -> dict:
        """Enrol the one face shown in ``image`` (RGB uint8 array, encoded bytes, or a file path).

        Raises :class:`NoFace` / :class:`ManyFaces` unless the detector finds exactly one face (crop group
        photos to the person first), :class:`BadImage` when the bytes are not an image. Returns the stored
        record (id, name, box, detection score, gender, age, …)."""
        self._check_name(name)
        if not self.has_group(group):
            raise GroupNotFound(detail=group)
        img = decode_image(image)
        pipeline = self.pipeline()
        with self._pipeline_lock:
            faces = pipeline.analyze(img, min_score=min_score)
        if not faces:
            raise NoFace(detail=f"{img.shape[1]}x{img.shape[0]} image")
        if len(faces) > 1:
            raise ManyFaces(detail=f"{len(faces)} faces")
        f = faces[0]
        record = {
            "box": [round(float(v), 1) for v in f.box], "det_score": round(f.score, 6),
            "keypoint_score": round(f.keypoint_score, 6), "aligned_by": f.aligned_by,
            "gender": f.gender, "age": round(float(f.age), 1),
        }
        return self.add_embeddings(group, f.embedding[None], [name], ids=[id] if id else None,
                                   metas=[meta or {}], extra=[record])[0]

    def add_embeddings(self, group: str, embeddings: np.ndarray, names: Sequence[str], *,
                       ids: Sequence[str] | None = None, metas: Sequence[dict] | None = None,
                       extra: Sequence[dict] | None = None) -> list[dict]:
        """Add descriptors directly (bulk import, e.g. an operator's politician list). Each is
        L2-normalised; returns the stored records."""
        vecs = _unit(embeddings, DIM)
        n = len(vecs)
        if len(names) != n or (ids is not None and len(ids) != n) or (metas is not None and len(metas) != n):
            raise InvalidFace(detail="names/ids/metas do not match the embeddings")
        for nm in names:
            self._check_name(nm)
        new_ids = [str(i) for i in ids] if ids is not None else [uuid.uuid4().hex for _ in range(n)]
        for i in new_ids:
            if not _FACE_ID_RE.match(i):
                raise InvalidFace(detail=f"face id {i!r}")
        if len(set(new_ids)) != n:
            raise FaceExists(detail="duplicate ids in one call")
        now = time.time()
        records = []
        for k in range(n):
            rec = {"id": new_ids[k], "name": names[k], "meta": dict(metas[k]) if metas else {}, "added": now}
            if extra:
                rec.update(extra[k])
            records.append(rec)
        with self._locked(group) as d:
            current = self.gallery(group)  # up to date: we hold the lock
            have = set(current.ids)
            dup = [i for i in new_ids if i in have]
            if dup:
                raise FaceExists(detail=f"face id {dup[0]!r}")
            index = dict(current.index)
            shards = list(index["shards"])
            old_files = _files_of(shards)
            pos = 0
            # fill the last shard, then open new ones
            if shards and shards[-1]["rows"] < SHARD_ROWS:
                take = min(SHARD_ROWS - shards[-1]["rows"], n)
                shards[-1] = _write_shard(d, np.concatenate([np.asarray(current.shards[-1]), vecs[:take]]),
                                          current.records[-1] + records[:take])
                pos = take
            while pos < n:
                take = min(SHARD_ROWS, n - pos)
                shards.append(_write_shard(d, vecs[pos : pos + take], records[pos : pos + take]))
                pos += take
            index["shards"] = shards
            index["faces"] = len(current) + n
            self._commit(d, index, old_files)
        return records

    def remove_face(self, group: str, face_id: str) -> dict:
        """Remove one face by id; returns its record. :class:`FaceNotFound` when absent."""
        with self._locked(group) as d:
            current = self.gallery(group)
            try:
                row = current.ids.index(face_id)
            except ValueError:
                raise FaceNotFound(detail=f"{group}/{face_id}") from None
            record = current.faces[row]
            index = dict(current.index)
            shards = list(index["shards"])
            old_files = _files_of(shards)
            base = 0
            for k, part in enumerate(current.records):
                if row < base + len(part):
                    mat = np.delete(np.asarray(current.shards[k]), row - base, axis=0)
                    recs = part[: row - base] + part[row - base + 1 :]
                    if len(mat):
                        shards[k] = _write_shard(d, mat, recs)
                    else:
                        del shards[k]
                    break
                base += len(part)
            index["shards"] = shards
            index["faces"] = len(current) - 1
            self._commit(d, index, old_files)
        return record

    def remove_name(self, group: str, name: str) -> int:
        """Remove every face enrolled under ``name``; returns how many."""
        n = 0
        for f in self.list_faces(group):
            if f["name"] == name:
                self.remove_face(group, f["id"])
                n += 1
        return n

    def _commit(self, d: Path, index: dict, old_files: set[str]) -> None:
        index["version"] = int(index["version"]) + 1
        index["updated"] = time.time()
        _write_json(d / _INDEX, index)
        for name in old_files - _files_of(index["shards"]):
            try:
                (d / name).unlink()
            except FileNotFoundError:
                pass

    @staticmethod
    def _check_name(name: Any) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise InvalidFace(detail=f"face name {name!r}")

    # -- reading and search ------------------------------------------------------------------------------
    def _read_index(self, group: str) -> dict:
        try:
            return _read_json(self._dir(group) / _INDEX)
        except FileNotFoundError:
            raise GroupNotFound(detail=group) from None

    def gallery(self, group: str) -> Gallery:
        """The current version of a gallery (cached; reloaded when ``index.json`` changed on disk)."""
        path = self._dir(group) / _INDEX
        for _attempt in range(5):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                with self._cache_lock:
                    self._cache.pop(group, None)
                raise GroupNotFound(detail=group) from None
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            with self._cache_lock:
                cached = self._cache.get(group)
            if cached is not None and cached.stamp == stamp:
                return cached
            try:
                index = _read_json(path)
                reuse = ({f: (m, r) for f, m, r in zip(cached.shard_files, cached.shards, cached.records)}
                         if cached is not None else {})
                shards, records = [], []
                for entry in index["shards"]:
                    if entry["file"] in reuse:
                        mat, recs = reuse[entry["file"]]
                    else:
                        mat = _load_shard(path.parent / entry["file"])
                        recs = _read_json(path.parent / entry["faces"])
                        if len(recs) != len(mat):
                            raise ValueError(f"{entry['faces']}: {len(recs)} records for {len(mat)} rows")
                    shards.append(mat)
                    records.append(recs)
            except (FileNotFoundError, ValueError):
                time.sleep(0.01)  # a writer replaced the index meanwhile: read the new one
                continue
            g = Gallery(group, index, shards, records, stamp)
            with self._cache_lock:
                self._cache[group] = g
            return g
        raise GroupNotFound(detail=f"{group}: index kept changing while reading")

    def search(self, group: str, embeddings: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[Match | None]:
        """Best face per query descriptor (see :meth:`Gallery.search`)."""
        return self.gallery(group).search(embeddings, threshold)

    def search_image(self, group: str, image: Any, threshold: float = DEFAULT_THRESHOLD) -> list[dict]:
        """Every face in an image with its best match: ``[{box, score, match}]`` (``match`` None if empty)."""
        img = decode_image(image)
        pipeline = self.pipeline()
        with self._pipeline_lock:
            faces = pipeline.analyze(img)
        if not faces:
            return []
        matches = self.search(group, np.stack([f.embedding for f in faces]), threshold)
        return [{"box": [round(float(v), 1) for v in f.box], "score": f.score, "match": m}
                for f, m in zip(faces, matches)]

    def pipeline(self) -> Any:
        with self._pipeline_lock:
            if self._pipeline is None:
                from .pipeline import FacePipeline

                self._pipeline = FacePipeline(self.models_dir, threads=self.threads)
            return self._pipeline


# -- files ------------------------------------------------------------------------------------------------
def _load_shard(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="r")
    if arr.dtype != np.float32 or arr.ndim != 2:
        raise ValueError(f"bad shard {path}")
    return arr


def _write_shard(d: Path, mat: np.ndarray, records: list[dict]) -> dict:
    """Write one shard's descriptors and records under fresh names; returns its index entry."""
    stem = f"s-{uuid.uuid4().hex}"
    tmp = d / f".{stem}.npy.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(mat, dtype=np.float32))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, d / f"{stem}.npy")
    _write_json(d / f"{stem}.json", records, sync_dir=False)
    return {"file": f"{stem}.npy", "faces": f"{stem}.json", "rows": int(len(mat))}


def _files_of(shards: list[dict]) -> set[str]:
    return {s["file"] for s in shards} | {s["faces"] for s in shards}


def _write_json(path: Path, obj: Any, sync_dir: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if not sync_dir:
        return
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _summary(index: dict) -> dict:
    return {"group": index["group"], "faces": index["faces"], "version": index["version"],
            "created": index["created"], "updated": index["updated"], "meta": index.get("meta", {})}


def decode_image(image: Any) -> np.ndarray:
    """RGB uint8 ``(H,W,3)`` from an array, encoded image bytes (JPEG, PNG, WebP, …) or a file path."""
    from .align import as_rgb

    if isinstance(image, np.ndarray):
        try:
            return as_rgb(image)
        except ValueError as exc:
            raise BadImage(detail=str(exc)) from None
    import av

    try:
        if isinstance(image, (bytes, bytearray, memoryview)):
            src: Any = io.BytesIO(bytes(image))
        elif isinstance(image, (str, os.PathLike)):
            src = str(image)
        else:
            raise BadImage(detail=f"unsupported image type {type(image).__name__}")
        with av.open(src) as c:
            if not c.streams.video:
                raise BadImage(detail="no picture in the file")
            frame = next(c.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except BadImage:
        raise
    except (av.FFmpegError, StopIteration, OSError, ValueError) as exc:
        raise BadImage(detail=f"{type(exc).__name__}: {exc}") from None
