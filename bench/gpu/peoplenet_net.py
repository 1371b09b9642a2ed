"""A PeopleNet-class detector in torch: ResNet34 trunk with DetectNet_v2 heads, 960×544.

Like NVIDIA's PeopleNet (TAO DetectNet_v2, ResNet34): the ResNet's last stage keeps stride 1,
so the features are 1/16 of the input (34×60 for 544×960, 512 channels), and two 1×1
convolutions give the coverage map (``[classes, 34, 60]``, sigmoid) and the box regressions
(``[4 × classes, 34, 60]``). Weights are random (torchvision's initialisation, seeded): the
benchmark measures speed, not accuracy.

This file is imported by the benchmark and copied next to the Triton model's ``model.py``.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

INPUT_HEIGHT = 544
INPUT_WIDTH = 960
STRIDE = 16
CLASSES = ("person", "bag", "face")


class PeopleNetRN34(nn.Module):
    """ResNet34 (stride 16) + DetectNet_v2 coverage and bbox heads."""

    def __init__(self, classes: int = len(CLASSES)) -> None:
        super().__init__()
        resnet = torchvision.models.resnet34(weights=None)
        last = resnet.layer4[0]
        last.conv1.stride = (1, 1)
        last.downsample[0].stride = (1, 1)
        self.trunk = nn.Sequential(
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.maxpool,
            resnet.layer1,
            resnet.layer2,
            resnet.layer3,
            resnet.layer4,
        )
        self.coverage = nn.Conv2d(512, classes, 1)
        self.bbox = nn.Conv2d(512, 4 * classes, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images``: (N, 3, 544, 960) in [0, 1] → coverage (N, C, 34, 60), bbox (N, 4C, 34, 60),
        both float32."""
        features = self.trunk(images)
        # C-order outputs (channels-last convolutions would hand back NHWC strides; DLPack
        # consumers such as Triton's Python backend take C-order only)
        coverage = torch.sigmoid(self.coverage(features)).float().contiguous()
        return coverage, self.bbox(features).float().contiguous()


def build(seed: int = 0) -> PeopleNetRN34:
    """The network with seeded random weights (float32, CPU)."""
    torch.manual_seed(seed)
    net = PeopleNetRN34()
    with torch.no_grad():
        # boxes of about ±35 px (one DetectNet_v2 "bbox norm") around each grid cell
        net.bbox.weight.mul_(0.01)
        net.bbox.bias.fill_(1.0)
    return net


@torch.no_grad()
def calibrate(
    net: PeopleNetRN34, images: torch.Tensor, detections_per_frame: float = 1.0
) -> PeopleNetRN34:
    """Make random weights behave: BatchNorm statistics from ``images`` (so activations stay
    in float16 range), and coverage biases set so about ``detections_per_frame`` grid cells
    per frame (all classes together) pass 0.5 on such images.

    Args:
        net: The network (float32) on the device of ``images``.
        images: (N, 3, 544, 960) float32 in [0, 1], frames like those the benchmark plays.
        detections_per_frame: Coverage cells above 0.5 per frame, on average.
    """
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batches
    net.train()
    for chunk in images.split(4):
        net.trunk(chunk)
    net.eval()
    features = net.trunk(images)
    logits = net.coverage(features)  # (N, C, h, w)
    cells = logits.shape[2] * logits.shape[3]
    share = min(0.5, detections_per_frame / (cells * logits.shape[1]))
    per_class = logits.transpose(0, 1).reshape(logits.shape[1], -1)
    threshold = torch.quantile(per_class.float(), 1.0 - share, dim=1)
    net.coverage.bias -= threshold
    return net


def for_inference(net: PeopleNetRN34, device: torch.device) -> PeopleNetRN34:
    """float16, channels-last, eval mode, on ``device``: as the benchmark and Triton run it."""
    return net.to(device).half().eval().to(memory_format=torch.channels_last)
