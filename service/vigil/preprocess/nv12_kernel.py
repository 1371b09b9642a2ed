"""One fused GPU kernel for NV12 frames: bilinear resize + BT.601 color + scale + layout + dtype.

Why a kernel of its own: on the GPU path Vigil's preprocessing shares the GPU with Triton's
model instances, which run in other processes (other CUDA contexts, time-sliced against
ours). The torch version of the same arithmetic (``GpuPreprocessor.to_model_rgb``) launches
about fifteen kernels per batch and moves ~60 MB per 1080p frame through fp32 intermediates;
measured on an H200, preprocessing 2,000 frames/s that way took ~10 % of Triton's
throughput away. This kernel reads only the source pixels it samples (four luma and four
chroma bytes per output pixel) and writes each output value once, in one launch per batch.

The arithmetic is the torch version's: ``F.interpolate(mode="bilinear",
align_corners=False)`` on each plane (half-pixel centres, source coordinates clamped at 0),
then the BT.601 limited-range matrix, a clamp to [0, 255], the model's scale, and rounding for
integer outputs. A letterboxed input resizes into a rectangle of the output (the placement)
and writes the pad value around it, in the same launch. The kernel is written in OpenAI Triton
(the ``triton`` package that CUDA builds of torch depend on; not Triton Inference Server),
compiled on first use.
"""

from __future__ import annotations

import functools
from typing import Any

BLOCK = 512


@functools.cache
def fused_nv12() -> Any | None:
    """The compiled-on-demand kernel launcher, or None when OpenAI Triton is unavailable."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def nv12_to_model(
        src,  # uint8 (N, H*3/2, W), contiguous
        dst,  # (N, ...) model input, any strides
        src_h,
        src_w,
        out_h,
        out_w,
        top,  # the content rectangle (letterbox; the whole output when stretched)
        left,
        content_h,
        content_w,
        scale_y,  # src_h / content_h
        scale_x,  # src_w / content_w
        pad,  # value of pixels outside the content, before the gain
        gain,  # the model's scale
        dst_sb,
        dst_sc,
        dst_sy,
        dst_sx,
        ROUND: tl.constexpr,  # noqa: N803 (Triton's constexpr convention)
        BLOCK: tl.constexpr,  # noqa: N803
    ):
        frame = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < out_h * out_w
        oy = offs // out_w
        ox = offs % out_w
        base = src + frame * (src_h * 3 // 2) * src_w
        # letterbox padding: no source pixel is read there (its coordinates may lie outside)
        cy = oy - top
        cx = ox - left
        inside = (cy >= 0) & (cy < content_h) & (cx >= 0) & (cx < content_w)
        load = valid & inside

        # luma plane, bilinear with half-pixel centres (as F.interpolate, align_corners=False)
        fy = tl.maximum((cy.to(tl.float32) + 0.5) * scale_y - 0.5, 0.0)
        fx = tl.maximum((cx.to(tl.float32) + 0.5) * scale_x - 0.5, 0.0)
        y0 = fy.to(tl.int32)
        x0 = fx.to(tl.int32)
        y1 = tl.minimum(y0 + 1, src_h - 1)
        x1 = tl.minimum(x0 + 1, src_w - 1)
        wy = fy - y0.to(tl.float32)
        wx = fx - x0.to(tl.float32)
        a = tl.load(base + y0 * src_w + x0, mask=load, other=0).to(tl.float32)
        b = tl.load(base + y0 * src_w + x1, mask=load, other=0).to(tl.float32)
        c = tl.load(base + y1 * src_w + x0, mask=load, other=0).to(tl.float32)
        d = tl.load(base + y1 * src_w + x1, mask=load, other=0).to(tl.float32)
        luma = (a * (1.0 - wx) + b * wx) * (1.0 - wy) + (c * (1.0 - wx) + d * wx) * wy

        # chroma plane: (H/2) rows of W/2 interleaved (U, V) pairs
        ch = src_h // 2
        cw = src_w // 2
        chroma = base + src_h * src_w
        gy = tl.maximum((cy.to(tl.float32) + 0.5) * (scale_y * 0.5) - 0.5, 0.0)
        gx = tl.maximum((cx.to(tl.float32) + 0.5) * (scale_x * 0.5) - 0.5, 0.0)
        cy0 = gy.to(tl.int32)
        cx0 = gx.to(tl.int32)
        cy1 = tl.minimum(cy0 + 1, ch - 1)
        cx1 = tl.minimum(cx0 + 1, cw - 1)
        vy = gy - cy0.to(tl.float32)
        vx = gx - cx0.to(tl.float32)
        r00 = chroma + cy0 * src_w + 2 * cx0
        r01 = chroma + cy0 * src_w + 2 * cx1
        r10 = chroma + cy1 * src_w + 2 * cx0
        r11 = chroma + cy1 * src_w + 2 * cx1
        u = (
            tl.load(r00, mask=load, other=128).to(tl.float32) * (1.0 - vx)
            + tl.load(r01, mask=load, other=128).to(tl.float32) * vx
        ) * (1.0 - vy) + (
            tl.load(r10, mask=load, other=128).to(tl.float32) * (1.0 - vx)
            + tl.load(r11, mask=load, other=128).to(tl.float32) * vx
        ) * vy
        v = (
            tl.load(r00 + 1, mask=load, other=128).to(tl.float32) * (1.0 - vx)
            + tl.load(r01 + 1, mask=load, other=128).to(tl.float32) * vx
        ) * (1.0 - vy) + (
            tl.load(r10 + 1, mask=load, other=128).to(tl.float32) * (1.0 - vx)
            + tl.load(r11 + 1, mask=load, other=128).to(tl.float32) * vx
        ) * vy
        u = u - 128.0
        v = v - 128.0

        # BT.601 limited range (the constants of vigil.preprocess.gpu)
        y = (luma - 16.0) * (255.0 / 219.0)
        red = tl.where(inside, tl.minimum(tl.maximum(y + 1.596 * v, 0.0), 255.0), pad) * gain
        green = tl.minimum(tl.maximum(y - 0.392 * u - 0.813 * v, 0.0), 255.0)
        green = tl.where(inside, green, pad) * gain
        blue = tl.where(inside, tl.minimum(tl.maximum(y + 2.017 * u, 0.0), 255.0), pad) * gain
        if ROUND:
            red = tl.floor(red + 0.5)
            green = tl.floor(green + 0.5)
            blue = tl.floor(blue + 0.5)
        out = dst + frame * dst_sb + oy.to(tl.int64) * dst_sy + ox.to(tl.int64) * dst_sx
        kind = dst.dtype.element_ty
        tl.store(out, red.to(kind), mask=valid)
        tl.store(out + dst_sc, green.to(kind), mask=valid)
        tl.store(out + 2 * dst_sc, blue.to(kind), mask=valid)

    def launch(
        src: Any,
        dst: Any,
        channel_dim: int,
        gain: float,
        round_: bool,
        placement: tuple[int, int, int, int] | None = None,
        pad: float = 0.0,
    ) -> None:
        """Convert ``src`` (N, H*3/2, W) uint8 NV12 into ``dst`` (N, 3, h, w) or
        (N, h, w, 3); ``channel_dim`` is 1 or 3. ``placement`` ``(left, top, width,
        height)``: the rectangle of ``dst`` the frames are resized into (letterbox), the rest
        set to ``pad`` (before ``gain``); None: the whole of ``dst``."""
        n, rows, width = src.shape
        height = rows * 2 // 3
        if channel_dim == 1:
            _, _, out_h, out_w = dst.shape
            sb, sc, sy, sx = dst.stride()
        else:
            _, out_h, out_w, _ = dst.shape
            sb, sy, sx, sc = dst.stride()
        left, top, content_w, content_h = placement or (0, 0, out_w, out_h)
        grid = (n, triton.cdiv(out_h * out_w, BLOCK))
        nv12_to_model[grid](
            src, dst, height, width, out_h, out_w, top, left, content_h, content_w,
            height / content_h, width / content_w, pad, gain,
            sb, sc, sy, sx, ROUND=round_, BLOCK=BLOCK,
        )  # fmt: skip

    return launch
