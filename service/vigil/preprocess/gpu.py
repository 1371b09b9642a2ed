"""GPU preprocessing with torch: color, resize, scale, layout and dtype, into a CUDA slot.

Frames decoded by NVDEC arrive as NV12 (or RGB) CUDA tensors; frames from CPU sources arrive
as numpy RGB arrays and are uploaded (host → device is fine; pixels never go back). Frames of
the same size and format are processed together: one resize and one color conversion per
group, written straight into the slot's input tensor, which Triton reads in place.

Resizing matches :class:`~vigil.preprocess.cpu.CpuPreprocessor`: the whole frame is stretched
to the model's input, or letterboxed into it (``InputFormat.placement``: the same rectangle,
the same pad value), with bilinear interpolation (half-pixel centers, as OpenCV's
``INTER_LINEAR``), so parsers map boxes back the same way on both paths. NV12 is converted
with the BT.601 limited-range matrix, what FFmpeg's ``rgb24`` conversion uses for untagged
video, so both paths see the same colors. The planes are resized before the color conversion
(both are linear), which does the matrix work at the model's resolution instead of 1080p.

NV12 frames already on the GPU (what NVDEC gives) take one fused kernel instead
(:mod:`vigil.preprocess.nv12_kernel`: same arithmetic, one launch per batch, a fraction of
the memory traffic); the torch version remains for RGB frames and hosts without OpenAI
Triton.

torch is imported when a preprocessor is made, never at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vigil.frame import Frame, PixelFormat
from vigil.infer.tensors import InputFormat, Layout, Placement, Resize
from vigil.preprocess.nv12_kernel import fused_nv12

# BT.601 limited range: RGB = Y' * 1.164 + chroma terms (Y' = Y - 16, U' = U - 128, V' = V - 128)
_Y_GAIN = 255.0 / 219.0
_R_V = 1.596
_G_U = -0.392
_G_V = -0.813
_B_U = 2.017


class GpuPreprocessor:
    """Writes batches of frames into a CUDA tensor (a slot of a CUDA shared-memory ring).

    Args:
        fmt: The model's input format.
        device_id: CUDA device of the slots.
        fused: NV12 frames take the one-launch kernel when OpenAI Triton is there (False:
            torch ops only, the reference the kernel is tested against).

    The work runs on a stream of its own and is finished (synchronized) when the call
    returns, so Triton reads complete tensors.
    """

    def __init__(self, fmt: InputFormat, device_id: int = 0, *, fused: bool = True) -> None:
        import torch
        import torch.nn.functional as F  # noqa: N812 (torch's own convention)

        self.format = fmt
        self.device = torch.device("cuda", device_id)
        self._torch = torch
        self._interpolate = F.interpolate
        with torch.cuda.device(self.device):
            self._stream = torch.cuda.Stream(self.device)
        # NV12 frames on the GPU go through one fused kernel when OpenAI Triton is there
        self._fused = fused_nv12() if fused else None
        if self._fused is not None:
            self._compile_for(1920, 1080)

    def _compile_for(self, width: int, height: int) -> None:
        """Run the kernel once on a blank frame of this size, so that its compilation (about a
        second, then cached on disk) happens now and not on a stream's first batch."""
        torch = self._torch
        dtype = torch.from_numpy(np.empty(0, self.format.dtype)).dtype
        fmt = self.format
        shape = (
            (1, 3, fmt.height, fmt.width)
            if fmt.layout is Layout.CHW
            else (1, fmt.height, fmt.width, 3)
        )
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            blank = torch.zeros((1, height * 3 // 2, width), dtype=torch.uint8, device=self.device)
            self._write_fused(blank, torch.empty(shape, dtype=dtype, device=self.device), [0])
            self._stream.synchronize()

    def __call__(self, frames: Sequence[Frame], out: Any) -> None:
        """Write ``frames`` into ``out[:len(frames)]`` (a CUDA tensor in a slot)."""
        torch = self._torch
        groups: dict[tuple[PixelFormat, int, int, bool], list[int]] = {}
        for i, frame in enumerate(frames):
            key = (frame.pixel_format, frame.height, frame.width, frame.on_gpu)
            groups.setdefault(key, []).append(i)
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            for (pixel_format, height, width, on_gpu), indices in groups.items():
                images = [frames[i].image for i in indices]
                if on_gpu:
                    batch = torch.stack(images)
                else:
                    batch = torch.from_numpy(np.stack(images)).to(self.device)
                place = self.format.placement(width, height)
                if self._fused is not None and pixel_format is PixelFormat.NV12:
                    self._write_fused(batch, out, indices, place)
                else:
                    size = (place.height, place.width)
                    self._write(self.to_model_rgb(batch, pixel_format, size), out, indices, place)
            self._stream.synchronize()

    def to_model_rgb(
        self, batch: Any, pixel_format: PixelFormat, size: tuple[int, int] | None = None
    ) -> Any:
        """``uint8`` images (N, H, W, 3) RGB or (N, H*3/2, W) NV12 → float32 (N, 3, h, w) RGB
        in [0, 255] of ``size`` ``(h, w)`` (default: the model's input size)."""
        size = size or (self.format.height, self.format.width)
        if pixel_format is PixelFormat.RGB:
            return self._resize(batch.permute(0, 3, 1, 2).float(), size)
        n, rows, width = batch.shape
        height = rows * 2 // 3
        luma = self._resize(batch[:, :height].unsqueeze(1).float(), size)
        chroma = batch[:, height:].reshape(n, height // 2, width // 2, 2).permute(0, 3, 1, 2)
        chroma = self._resize(chroma.float(), size) - 128.0
        y = (luma - 16.0) * _Y_GAIN
        u, v = chroma[:, 0:1], chroma[:, 1:2]
        rgb = self._torch.cat((y + _R_V * v, y + _G_U * u + _G_V * v, y + _B_U * u), dim=1)
        return rgb.clamp_(0.0, 255.0)

    def _resize(self, images: Any, size: tuple[int, int]) -> Any:
        if tuple(images.shape[-2:]) == size:
            return images
        return self._interpolate(
            images, size=size, mode="bilinear", align_corners=False, antialias=False
        )

    def _write_fused(
        self, nv12: Any, out: Any, indices: list[int], place: Placement | None = None
    ) -> None:
        assert self._fused is not None
        fmt = self.format
        start, stop = indices[0], indices[-1] + 1
        contiguous = stop - start == len(indices)
        target = out[start:stop] if contiguous else out.new_empty((len(indices), *out.shape[1:]))
        channel_dim = 1 if fmt.layout is Layout.CHW else 3
        rect = None if place is None else (place.left, place.top, place.width, place.height)
        self._fused(
            nv12, target, channel_dim, fmt.scale, np.dtype(fmt.dtype).kind in "ui",
            rect, fmt.pad_value,
        )  # fmt: skip
        if not contiguous:
            out.index_copy_(0, self._torch.tensor(indices, device=self.device), target)

    def _write(self, rgb: Any, out: Any, indices: list[int], place: Placement) -> None:
        fmt = self.format
        if fmt.resize is Resize.LETTERBOX:
            # the content in its rectangle of a padded input-sized batch
            full = rgb.new_full((rgb.shape[0], 3, fmt.height, fmt.width), fmt.pad_value)
            rows = slice(place.top, place.top + place.height)
            full[:, :, rows, place.left : place.left + place.width] = rgb
            rgb = full
        values = rgb * fmt.scale if fmt.scale != 1.0 else rgb
        if fmt.layout is Layout.HWC:
            values = values.permute(0, 2, 3, 1)
        if np.dtype(fmt.dtype).kind in "ui":
            values = values.round()
        start, stop = indices[0], indices[-1] + 1
        if stop - start == len(indices):
            out[start:stop].copy_(values)
        else:
            index = self._torch.tensor(indices, device=self.device)
            out.index_copy_(0, index, values.to(out.dtype))
