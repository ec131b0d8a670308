"""Int8 quantization of encoders and decoders with torch's quantized kernels
(``torch.ao``; fbgemm/x86 int8 × int8 GEMMs on this CPU):

- ``dynamic``: weights int8 per output channel, activations quantized per batch on the
  fly (``quantize_dynamic``): no calibration.
- ``static``: post-training static quantization; every linear layer's input scale and
  zero point come from observers run over calibration batches (histogram observer for
  activations, per-channel weights), then fixed. Norms, softmax and activations stay fp32
  between the int8 linears.
- ``qat``: quantization-aware training (Q8BERT): fake-quant observers in every linear
  while fine-tuning, then converted like ``static``.

A quantized model is for inference: sesame's safetensors format would lose its scales
and packed weights, so ``save_model`` refuses it (``models.quantize.is_converted``); save
the float model (for QAT: the fine-tuned float weights) and quantize on load. ``check``
evaluates the float and the quantized model on the same examples and reports both."""
from __future__ import annotations

import copy
import warnings
from typing import Iterable

import torch
from torch import nn

from sesame.errors import ConfigError
from sesame.models import Model

METHODS = ("dynamic", "static", "qat")
ENGINE = "x86"


def _ao():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch.ao.quantization as q
    if ENGINE not in torch.backends.quantized.supported_engines:
        raise ConfigError(f"this torch build has no {ENGINE!r} quantized engine "
                          f"(it has {torch.backends.quantized.supported_engines})")
    torch.backends.quantized.engine = ENGINE
    return q


def _quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")
    return ctx


def _linears(model: Model) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, linear) for every linear layer whose weight is not tied."""
    tied = {id(p) for k in model.ties() for n, p in model.named_parameters(remove_duplicate=False) if n == k}
    out = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear) and id(child.weight) not in tied:
                out.append((parent, name, child))
    return out


def dynamic(model: Model) -> Model:
    """A dynamically int8-quantized copy of ``model`` (eval mode)."""
    q = _ao()
    ctx = _quiet()
    try:
        out = copy.deepcopy(model).eval()
        for parent, name, lin in _linears(out):
            spec = {nn.Linear: q.per_channel_dynamic_qconfig}
            setattr(parent, name, q.quantize_dynamic(nn.Sequential(lin), spec, dtype=torch.qint8)[0])
        return out
    finally:
        ctx.__exit__(None, None, None)


def _wrap(model: Model, qconfig) -> None:
    q = _ao()
    for parent, name, lin in _linears(model):
        wrapper = q.QuantWrapper(lin)
        wrapper.qconfig = qconfig
        setattr(parent, name, wrapper)


def prepare_static(model: Model) -> Model:
    """A copy with observers in front of every linear layer; run calibration batches
    through it, then ``convert``."""
    q = _ao()
    ctx = _quiet()
    try:
        out = copy.deepcopy(model).eval()
        _wrap(out, q.get_default_qconfig(ENGINE))
        q.prepare(out, inplace=True)
        return out
    finally:
        ctx.__exit__(None, None, None)


def prepare_qat(model: Model) -> Model:
    """``model`` (in place, train mode) with fake-quant in every linear layer, for fine-tuning."""
    q = _ao()
    ctx = _quiet()
    try:
        model.train()
        _wrap(model, q.get_default_qat_qconfig(ENGINE))
        q.prepare_qat(model, inplace=True)
        return model
    finally:
        ctx.__exit__(None, None, None)


def convert(model: Model) -> Model:
    """Replace observed / fake-quant linears by int8 ones (in place, eval mode)."""
    q = _ao()
    ctx = _quiet()
    try:
        model.eval()
        q.convert(model, inplace=True)
        return model
    finally:
        ctx.__exit__(None, None, None)


@torch.no_grad()
def static(model: Model, calibrate: Iterable, run) -> Model:
    """Post-training static quantization: ``run(prepared, batch)`` over ``calibrate``."""
    prepared = prepare_static(model)
    seen = 0
    for batch in calibrate:
        run(prepared, batch)
        seen += 1
    if not seen:
        raise ConfigError("static quantization needs at least one calibration batch")
    return convert(prepared)


def float_weights(model: Model) -> Model:
    """The float model inside a QAT-prepared one (fake-quant removed), for saving."""
    out = copy.deepcopy(model)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ == "QuantWrapper":
                lin = child.module
                plain = nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None)
                plain.weight, plain.bias = lin.weight, lin.bias
                setattr(parent, name, plain)
    return out


def _bytes(value) -> int:
    if isinstance(value, (tuple, list)):
        return sum(_bytes(v) for v in value)
    if not isinstance(value, torch.Tensor):
        return 0
    if value.is_quantized:
        extra = value.q_per_channel_scales().numel() * 12 if value.qscheme() in (
            torch.per_channel_affine, torch.per_channel_symmetric) else 12
        return value.numel() * value.element_size() + extra
    return value.numel() * value.element_size()


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of the model's tensors, each stored once (int8 weights count one byte each,
    plus their scales and zero points)."""
    seen, total = set(), 0
    for value in model.state_dict(keep_vars=True).values():
        key = id(value)
        if key not in seen:
            seen.add(key)
            total += _bytes(value)
    return total


# ---------------------------------------------------------------- the pipeline

def quantize(model_dir, dataset: str, method: str, run_dir=None, *, calibration: int = 256, train=None,
             max_train=None, max_eval=None, data_dir=None, batch_size: int = 32, progress: bool = True,
             check: bool = True) -> dict:
    """Quantize the fine-tuned model in ``model_dir`` with ``method`` and, with ``check``,
    evaluate the fp32 and int8 models on ``dataset``'s dev (and test) split. ``qat``
    fine-tunes on the train split first (``run_dir`` holds that run and the float model)."""
    from pathlib import Path

    from sesame.compress import run as R
    from sesame.compress.prune import _load

    if method not in METHODS:
        raise ConfigError(f"unknown quantization method {method!r}; choose one of {', '.join(METHODS)}")
    model, tok, labeled, module = _load(model_dir, dataset, max_train, max_eval, data_dir)
    task = labeled.task
    summary: dict = {"method": method, "dataset": dataset, "bytes": {"fp32": tensor_bytes(model)}}
    if check:
        summary["fp32"] = R.evaluate(labeled, model, batch_size)
    if method == "dynamic":
        qmodel = dynamic(model)
    elif method == "static":
        examples = labeled.train[:calibration]
        batches = [task.transform({"examples": examples[i:i + batch_size]})
                   for i in range(0, len(examples), batch_size)]
        qmodel = static(model, batches, lambda m, b: task.module_class(m)(b))
        summary["calibration_examples"] = len(examples)
    else:
        if run_dir is None:
            raise ConfigError("quantization-aware training fine-tunes: give a run directory (--out)")
        run_dir = Path(run_dir)
        prepare_qat(model)
        tcfg = R.train_config(train, model, len(labeled.train))
        fit, trainer = R.fit(task, module, model.config, tcfg, labeled.train, run_dir, progress=progress,
                             config={"quantize": {"method": "qat"}})
        summary["train"] = fit
        plain = float_weights(model)
        R.save(plain, tok, labeled.labels, run_dir / "model",
               {"dataset": dataset, "task": task.name, "labels": labeled.labels, "source_model": str(model_dir),
                "options": task.opts.to_dict(), "quantize": "qat: float weights trained with fake-quant; "
                "quantize on load"})
        summary["model_dir"] = str(run_dir / "model")
        if check:
            summary["qat_float"] = R.evaluate(labeled, plain, batch_size)
        qmodel = convert(model)
    if check:
        summary["int8"] = R.evaluate(labeled, qmodel, batch_size)
        name, _ = R.primary(summary["fp32"]["dev"]["metrics"])
        summary["metric"] = name
        summary["delta"] = {split: summary["int8"][split]["metrics"][name] - summary["fp32"][split]["metrics"][name]
                            for split in summary["fp32"]}
    summary["bytes"]["int8"] = tensor_bytes(qmodel)
    summary["model"] = qmodel
    return summary
