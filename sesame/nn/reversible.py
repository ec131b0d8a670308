"""Reversible residual layers (Gomez et al., 2017; Reformer): with two streams,
y1 = x1 + Attn(x2) and y2 = x2 + FFN(y1), a block's inputs can be rebuilt from
its outputs, so training keeps no activations per layer: the backward pass
recomputes each block from the outputs above it. Activation memory no longer
grows with depth.

The input x feeds both streams and the stack returns their mean. Dropout is
replayed exactly (the RNG state before each branch is saved and restored), and
kernels that advance their own counters (Performer's redraws, LSH's hash draws)
leave them alone while ``recomputing()``. Parameter gradients are returned
through the autograd function, so gradient hooks (DDP) see them as usual. The
rebuilt inputs differ from the originals by rounding (x2 = y2 − FFN(y1)), which
is why the tests compare gradients to 1e-5, not bit for bit."""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses

import torch

_RECOMPUTING = contextvars.ContextVar("sesame_recomputing", default=False)


def recomputing() -> bool:
    """True while a reversible stack recomputes blocks for its backward pass."""
    return _RECOMPUTING.get()


def _rng_state(device: torch.device):
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


@contextlib.contextmanager
def _replay(state, device: torch.device):
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


def _params(module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(fctx, x1, x2, blocks, ctx, params, *flat):
        states = []
        with torch.no_grad():
            for blk in blocks:
                s_f = _rng_state(x1.device)
                y1 = x1 + blk.attn_branch(x2, ctx)
                s_g = _rng_state(x1.device)
                y2 = x2 + blk.ffn_branch(y1)
                states.append((s_f, s_g))
                x1, x2 = y1, y2
        fctx.blocks, fctx.params, fctx.states = blocks, params, states
        fctx.ctx = dataclasses.replace(ctx, attentions=None)  # the replay appends no maps
        fctx.save_for_backward(x1, x2)
        return x1, x2

    @staticmethod
    def backward(fctx, dy1, dy2):
        y1, y2 = fctx.saved_tensors
        index = {id(p): i for i, p in enumerate(fctx.params)}
        grads: list[torch.Tensor | None] = [None] * len(fctx.params)

        def add(ps, gs):
            for p, g in zip(ps, gs):
                if g is not None:
                    i = index[id(p)]
                    grads[i] = g if grads[i] is None else grads[i] + g

        token = _RECOMPUTING.set(True)
        try:
            for blk, (s_f, s_g) in zip(reversed(fctx.blocks), reversed(fctx.states)):
                ps_g = _params(blk.ffn_part())
                with torch.enable_grad(), _replay(s_g, y1.device):
                    y1 = y1.detach().requires_grad_()
                    g = blk.ffn_branch(y1)
                    out = torch.autograd.grad(g, [y1, *ps_g], dy2, allow_unused=True)
                dy1 = dy1 + out[0]
                add(ps_g, out[1:])
                x2 = (y2 - g).detach()
                ps_f = _params(blk.attn_part())
                with torch.enable_grad(), _replay(s_f, y1.device):
                    x2.requires_grad_()
                    f = blk.attn_branch(x2, fctx.ctx)
                    out = torch.autograd.grad(f, [x2, *ps_f], dy1, allow_unused=True)
                add(ps_f, out[1:])
                dy2 = dy2 + out[0]
                y1, y2 = (y1 - f).detach(), x2.detach()
        finally:
            _RECOMPUTING.reset(token)
        return (dy1, dy2, None, None, None, *grads)


def reversible_stack(stack, x: torch.Tensor, ctx, cache=None, hidden_states: list | None = None) -> torch.Tensor:
    """Run ``stack``'s blocks as reversible layers; returns the mean of the two streams."""
    blocks = [stack[0 if stack.shared else i] for i in range(stack.depth)]
    if cache is not None or hidden_states is not None or not torch.is_grad_enabled():
        x1 = x2 = x  # no backward to save for (decoding, evaluation) or every layer asked for
        for i, blk in enumerate(blocks):
            x1 = x1 + blk.attn_branch(x2, ctx, cache.layers[i] if cache is not None else None)
            x2 = x2 + blk.ffn_branch(x1)
            if hidden_states is not None:
                hidden_states.append((x1 + x2) / 2)
        return (x1 + x2) / 2
    params = list({id(p): p for blk in blocks for p in _params(blk)}.values())
    y1, y2 = _Reversible.apply(x, x, blocks, ctx, params, *params)
    return (y1 + y2) / 2
