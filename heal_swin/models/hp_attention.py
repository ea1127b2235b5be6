"""Multi-head self-attention inside nested HEALPix windows, with a relative position bias.

Four formulations of the same function:

* **eager inference** (no gradients, CPU or GPU): ``F.scaled_dot_product_attention`` on strided
  views of the qkv projection, with the (bias + shift mask) passed as a 4-D additive mask. A 4-D
  mask keeps PyTorch on its fused (flash) kernel, which reads q/k/v in place and writes the output
  in token-major order, so neither q/k/v nor the output are copied. The bias + mask is cached
  while the bias table is unchanged (compared by value), when it is small.
* **training** (also compiled): attention written out (``q @ k^T + bias + mask``, softmax,
  ``@ v``). SDPA would fall back to its slow general path here anyway, because the learnable
  bias needs a gradient.
* **inference under ``torch.compile``**: the same SDPA call as eager inference, written without
  in-place ops or the Python-side cache (which inductor cannot trace), so that inductor calls the
  fused kernel: 1.07x the written-out attention for the compiled bf16 paper model at nside 128
  (BENCHMARKS.md).
* **ONNX export**: the same written-out attention in plain ONNX ops, shaped for onnxruntime:
  q, k and v as three products of the input (no Split of the packed projection, which
  onnxruntime runs as a single-threaded copy; and int8 quantisation shares one quantised input
  between the three), cosine norms as one reduction and one broadcast product each, k laid out
  for ``q @ k^T`` by a single transpose. 1.04-1.10x (fp32) / 1.08x (int8) on the paper model
  in onnxruntime (BENCHMARKS.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from heal_swin.models import hp_windows
from heal_swin.models.fused import FusedLinear, cosine_normalise

__all__ = ["HealWindowAttention"]

_MAX_LOGIT_SCALE = math.log(100.0)  # Swin-v2 clamps the learned temperature at 100
_MASK_CACHE_BYTES = 16 * 2**20  # cache bias + mask only when it is at most this large


class HealWindowAttention(nn.Module):
    """Window attention. Input/output ``(B, nW, w, C)``.

    The bias table is Swin's ``(2s-1)**2 x heads`` on the window's ``s x s`` face coordinates
    (``s = sqrt(w)``; the paper's code labels the face coordinates differently, so its table is
    ours with the rows relabelled); ``mask`` (nW, w, w) is the additive shift mask (0 allowed /
    -inf not; the paper's code adds -100, which a cosine-attention temperature near its cap of
    100 can outweigh), or None for unshifted windows. ``cosine=True`` is Swin-v2's scaled cosine
    attention.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        cosine: bool = False,
        rel_pos_bias: bool = True,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window = window
        self.cosine = cosine
        self.attn_drop = attn_drop
        self.qkv = FusedLinear(dim, 3 * dim, bias=qkv_bias)
        self.proj = FusedLinear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if cosine:
            self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.rel_pos_bias = rel_pos_bias
        if rel_pos_bias:
            s = round(window**0.5)
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * s - 1) ** 2, num_heads))
            trunc_normal_(self.relative_position_bias_table, std=0.02)
            idx = torch.from_numpy(hp_windows.relative_position_index(window))
            self.register_buffer("relative_position_index", idx, persistent=False)
        self._mask_cache: tuple[tuple, torch.Tensor | None, torch.Tensor | None] | None = None

    def _bias(self) -> torch.Tensor | None:
        """``(H, w, w)`` relative position bias, or None."""
        if not self.rel_pos_bias:
            return None
        w = self.window
        b = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return b.reshape(w, w, self.num_heads).permute(2, 0, 1)

    def _scale(self) -> torch.Tensor:
        """``(H, 1, 1)`` cosine-attention temperature."""
        return torch.clamp(self.logit_scale, max=_MAX_LOGIT_SCALE).exp()

    def additive_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """Bias + shift mask as ``(1, H, w, w)`` (no mask) or ``(nW, H, w, w)``, or None."""
        bias = self._bias()
        if bias is None:
            return None if mask is None else mask.unsqueeze(1)
        bias = bias.unsqueeze(0)
        return bias if mask is None else bias + mask.unsqueeze(1)

    def _cached_mask(self, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        # The table is compared by value: PyTorch's fused AdamW updates parameters without
        # bumping their version counter, so a version key would serve a stale bias after a step.
        table = self.relative_position_bias_table if self.rel_pos_bias else None
        key = (
            None if table is None else table.device,
            None if mask is None else (mask._version, mask.data_ptr()),
            dtype,
        )
        cache = self._mask_cache
        if cache is not None and cache[0] == key and (table is None or torch.equal(cache[1], table)):
            return cache[2]
        m = self.additive_mask(mask)
        m = None if m is None else m.to(dtype).contiguous()
        if m is None or m.numel() * m.element_size() <= _MASK_CACHE_BYTES:
            self._mask_cache = (key, None if table is None else table.detach().clone(), m)
        return m

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return self._forward_onnx(x, mask)
        if torch.is_grad_enabled() or (self.training and self.attn_drop > 0):
            return self._forward_explicit(x, mask)
        if torch.compiler.is_compiling():
            return self._forward_compiled(x, mask)
        return self._forward_fused(x, mask)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as ``(B nW, H, w, d)`` views; cosine attention: q, k normalised, q times the temperature."""
        b, nw, w, _ = x.shape
        h, d = self.num_heads, self.head_dim
        qkv = self.qkv(x).view(b * nw, w, 3, h, d)
        if self.cosine:  # normalised in the projection's token-major layout, where it is contiguous
            scale = torch.stack([self._scale().view(h, 1), torch.ones(h, 1, dtype=x.dtype, device=x.device)])
            q, k = cosine_normalise(qkv[:, :, :2], scale).unbind(2)
            v = qkv[:, :, 2]
        else:
            q, k, v = qkv.unbind(2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def _forward_explicit(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, nw, w, c = x.shape
        h = self.num_heads
        q, k, v = self._heads(x)
        if not self.cosine:
            q = q * self.head_dim**-0.5
        attn = q @ k.transpose(-2, -1)  # (B nW, H, w, w)
        m = self.additive_mask(mask)
        if m is not None:  # broadcasts over the batch: (B, nW, H, w, w) + (1 | nW, H, w, w)
            # Out of place: attn is a view of the batched product, and autograd would turn an
            # in-place add on it into a full copy of the scores in the backward.
            attn = (attn.view(b, nw, h, w, w) + m.to(attn.dtype)).view(b * nw, h, w, w)
        attn = F.dropout(attn.softmax(-1), self.attn_drop, self.training)
        out = (attn @ v).transpose(1, 2).reshape(b, nw, w, c)
        return self.proj_drop(self.proj(out))

    def _forward_compiled(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, nw, w, c = x.shape
        q, k, v = self._heads(x)
        m = self.additive_mask(mask)
        if m is not None:
            m = m.to(q.dtype)
            if m.shape[0] > 1 and b > 1:  # a per-window mask, repeated for every image of the batch
                m = m.expand(b, *m.shape).reshape(b * nw, *m.shape[1:])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=1.0 if self.cosine else None)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, nw, w, c)))

    def _forward_onnx(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, nw, w, c = x.shape
        h, d = self.num_heads, self.head_dim
        weight, bias = self.qkv.weight, self.qkv.bias
        q, k, v = (
            F.linear(
                x, weight[i * c : (i + 1) * c], None if bias is None else bias[i * c : (i + 1) * c]
            ).reshape(b * nw, w, h, d)
            for i in range(3)
        )
        if self.cosine:
            q = q * (
                self._scale().view(h, 1) / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(1e-12)
            )
            k = k * torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min(1e-12).reciprocal()
        else:
            q = q * d**-0.5
        attn = q.transpose(1, 2) @ k.permute(0, 2, 3, 1)  # (B nW, H, w, w)
        m = self.additive_mask(mask)
        if m is not None:
            attn = (attn.view(b, nw, h, w, w) + m.to(attn.dtype)).view(b * nw, h, w, w)
        out = (attn.softmax(-1) @ v.transpose(1, 2)).transpose(1, 2).reshape(b, nw, w, c)
        return self.proj(out)

    def _forward_fused(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, nw, w, c = x.shape
        h, d = self.num_heads, self.head_dim
        qkv = self.qkv(x).view(b * nw, w, 3, h, d)
        if self.cosine:  # in place on the projection: q, k scaled by scale / |q|, 1 / |k|
            qk = qkv[:, :, :2]
            inv = torch.linalg.vector_norm(qk, dim=-1, keepdim=True).clamp_min_(1e-12).reciprocal_()
            inv[:, :, 0].mul_(self._scale().to(inv.dtype).view(h, 1))
            qk.mul_(inv)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # (B nW, H, w, d) views
        m = self._cached_mask(mask, q.dtype)
        scale = 1.0 if self.cosine else None
        if m is not None and m.shape[0] > 1 and b > 1:
            # A per-window mask cannot broadcast over the merged (B nW) dim: one call per image.
            parts = [
                F.scaled_dot_product_attention(
                    q[i * nw : (i + 1) * nw],
                    k[i * nw : (i + 1) * nw],
                    v[i * nw : (i + 1) * nw],
                    attn_mask=m,
                    scale=scale,
                ).transpose(1, 2)
                for i in range(b)
            ]
            out = torch.cat(parts)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=scale).transpose(1, 2)
        return self.proj_drop(self.proj(out.reshape(b, nw, w, c)))
