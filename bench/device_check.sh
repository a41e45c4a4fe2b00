#!/usr/bin/env bash
# The one GPU device check of issue 14: set up, run the GPU tests, run the GPU benchmarks, write the figures.
#
#   bash bench/device_check.sh            # on the lent machine, from the repo root (the device tool's `run`)
#
# Budget: a few minutes (set-up < 1 min from carried wheels, tests < 1 min, benchmarks ~3 min with
# --seconds 3). Everything goes to $OUT (or bench/device-out): device_check.log, gpu_figures.json,
# gpu_tests.txt, env.txt.
#
# What the machine lacks and must be carried as wheels in .whl/ (see /work/.library/device/README.md):
#   msgspec, av (PyAV: argus_core imports it), and onnxruntime-gpu — the device image has CPU-only
#   onnxruntime; onnxruntime-gpu's wheel is larger than one call may carry (64 MiB), so without it the
#   CUDA tests skip and the benchmarks record "onnxruntime has no CUDA provider" (the CuPy parts still run).
# Build .whl here (Python 3.12, x86-64):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl msgspec==0.23.0 av==18.1.0 onnxconverter-common==1.16.0
set -u
OUT="${OUT:-bench/device-out}"
mkdir -p "$OUT"
LOG="$OUT/device_check.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
t0=$(date +%s)

echo "== set-up"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$PY" - <<'EOF'
import importlib
for m in ("numpy", "cupy", "onnxruntime", "msgspec", "av", "cv2", "onnxconverter_common"):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "?"))
    except Exception as exc:
        print(m, "MISSING", exc)
try:
    import onnxruntime as ort
    print("providers", ort.get_available_providers())
except Exception:
    pass
EOF
} | tee "$OUT/env.txt"
echo "set-up: $(( $(date +%s) - t0 )) s"

echo "== GPU tests"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt"
echo "tests: $(( $(date +%s) - t0 )) s"

echo "== GPU benchmarks"
timeout 300 "$PY" bench/bench_gpu.py --out "$OUT/gpu_figures.json" --seconds "${SECONDS_PER_POINT:-3}"
echo "total: $(( $(date +%s) - t0 )) s; figures in $OUT/gpu_figures.json"
