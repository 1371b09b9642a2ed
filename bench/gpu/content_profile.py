"""How many detections the bench's stand-in detector gives along the clip, second by second.

The bench calibrates its random-weight detector on the clip's first batch of frames (about one
coverage cell above 0.5 per frame there). Later scenes may give many more, and every stream of
a real-time check plays the clip from its start at the same pace: a busy scene then reaches
all streams at once, and the parser and stages pay for it together. This prints, for each
``--bin-s`` seconds of the clip, the coverage cells above 0.5 per frame (what the
calibration targets) and at or above 0.4 (the service's default confidence threshold: the
candidates the ``detectnet_v2`` parser clusters), so a real-time trace's episodes can be set
beside the clip's content.

Usage (on the GPU machine, after bench/gpu/device_run.sh has set up the packages)::

    python bench/gpu/content_profile.py CLIP --stride 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "service")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--stride", type=int, default=3, help="every Nth frame of the clip")
    parser.add_argument("--batch", type=int, default=32, help="as the bench's --batch")
    parser.add_argument("--bin-s", type=float, default=2.0)
    args = parser.parse_args()

    import cv2
    import numpy as np
    import torch

    from bench.gpu import peoplenet_net
    from bench.gpu.baselines import cpu_frames, model_input

    device = torch.device("cuda", 0)
    calib_frames = cpu_frames(args.clip, args.batch)
    calib = torch.from_numpy(np.stack([model_input(f) for f in calib_frames])).to(device)
    net = peoplenet_net.calibrate(peoplenet_net.build(0).to(device), calib.float())
    net = peoplenet_net.for_inference(net, device)

    cap = cv2.VideoCapture(str(args.clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    rows: list[tuple[float, int, int]] = []  # (clip second, cells ≥ 0.5, cells ≥ 0.4)
    pending: list[tuple[float, np.ndarray]] = []
    index = 0
    while True:
        ok, bgr = cap.read()
        if ok and index % args.stride == 0:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            pending.append((index / fps, model_input(rgb)))
        index += 1
        if pending and (len(pending) == args.batch or not ok):
            images = torch.from_numpy(np.stack([p[1] for p in pending])).to(device)
            with torch.inference_mode():
                coverage, _ = net(images.contiguous(memory_format=torch.channels_last))
            cov = coverage.cpu().numpy()
            for i, (second, _) in enumerate(pending):
                rows.append((second, int((cov[i] > 0.5).sum()), int((cov[i] >= 0.4).sum())))
            pending = []
        if not ok:
            break
    cap.release()

    print(f"clip {args.clip.name}: {index} frames at {fps:g} fps; every {args.stride}th profiled")
    print("  from s   cells > 0.5 per frame (mean, max)   cells ≥ 0.4 (mean, max)")
    data = np.array(rows)
    for start in np.arange(0.0, data[-1, 0] + 1e-9, args.bin_s):
        part = data[(data[:, 0] >= start) & (data[:, 0] < start + args.bin_s)]
        if len(part):
            print(
                f"  {start:6.1f}   {part[:, 1].mean():8.1f} {part[:, 1].max():6.0f}"
                f"                        {part[:, 2].mean():8.1f} {part[:, 2].max():6.0f}"
            )
    print(
        f"whole clip: {data[:, 1].mean():.1f} cells > 0.5 per frame, {data[:, 2].mean():.1f} "
        f"≥ 0.4 (the service's default confidence threshold: the parser's candidates)"
    )


if __name__ == "__main__":
    main()
