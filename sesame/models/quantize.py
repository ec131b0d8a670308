"""Inference weight formats: ``fp32`` (as trained), ``bf16`` (every weight and activation
in bfloat16) and ``int8`` (weight-only: each linear layer's weight as int8 with one
bfloat16 scale per output row; activations stay fp32 between layers).

Decoding one token at a time reads every weight once per step, so on a CPU its speed is
set by bytes read, not by arithmetic: bf16 halves them, int8 quarters them. ``int8``
multiplies up to 16 rows with torch's packed int8 kernel (``_weight_int8pack_mm``, 2-3x
faster than fp32 for a few rows) and larger inputs (a prompt, a big batch) by dequantising
to bf16 first, which costs a pass over the weight each call: int8 suits decoding, bf16
suits encoders that always see many rows.

A converted model is for inference only: ``save_model`` refuses it (save the float model)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sesame.errors import ConfigError

WEIGHTS = ("fp32", "bf16", "int8")
PACKED_ROWS = 16  # up to this many rows the packed int8 kernel beats dequantise + bf16 matmul


class Int8Linear(nn.Module):
    """``nn.Linear`` with a symmetric per-output-channel int8 weight (inference only)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        top = w.abs().amax(1).clamp(min=1e-12)
        scale = (top / 127).to(torch.bfloat16)
        # bf16 may round the scale down; step it up so the largest weight still fits in 127
        scale = torch.where(scale.float() * 127 < top, torch.nextafter(scale, torch.full_like(scale, 1e9)), scale)
        q = torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", q.contiguous())
        self.register_buffer("scales", scale)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def dequantized(self) -> torch.Tensor:
        return self.weight.to(torch.bfloat16) * self.scales[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        if rows.shape[0] <= PACKED_ROWS and rows.device.type == "cpu":
            y = torch.ops.aten._weight_int8pack_mm(rows, self.weight, self.scales)
        else:
            y = F.linear(rows, self.dequantized())
        y = y.view(*x.shape[:-1], self.out_features)
        y = y.float() if self.bias is None else self.bias + y  # bf16 + fp32 bias: fp32 in one op
        return y if x.dtype == torch.float32 else y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight, bf16 scales"


def quantize_int8(module: nn.Module) -> None:
    """Replace every ``nn.Linear`` under ``module`` by an ``Int8Linear``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
        else:
            quantize_int8(child)


def convert_weights(model: nn.Module, weights: str) -> nn.Module:
    """Put ``model`` (in eval mode, in place) in the ``weights`` format for inference."""
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown weight format {weights!r}; choose one of {', '.join(WEIGHTS)}")
    model.eval()
    if weights == "bf16":
        model.to(torch.bfloat16)
    elif weights == "int8":
        quantize_int8(model)
    return model


def is_converted(model: nn.Module) -> bool:
    """True when ``model`` holds int8 layers (it can no longer be saved or trained): ours, or
    torch.ao quantized / QAT-prepared modules (sesame.compress.quantize), whose scales and
    packed weights safetensors would lose."""
    return any(isinstance(m, Int8Linear) or type(m).__module__.startswith(("torch.ao.nn.quantized",
                                                                              "torch.ao.nn.qat",
                                                                              "torch.ao.nn.intrinsic"))
               or type(m).__name__ == "QuantWrapper" for m in model.modules())
