"""sesame: build, pre-train, compress, fine-tune and apply Transformer language models."""
from sesame.errors import SesameError

__version__ = "0.1.0"
__all__ = ["SesameError", "__version__"]


def pipeline(task: str, model_dir, weights: str = "fp32", device: str = "cpu", truncation: str = "head"):
    """``sesame.pipeline("fill-mask", "runs/demo/model", device="auto")``: see ``sesame.pipelines``."""
    from sesame.pipelines import pipeline as _pipeline

    return _pipeline(task, model_dir, weights, device, truncation)


def __getattr__(name: str):
    # ``sesame.finetune(model_dir, train="reviews.csv", task=..., columns=...)``: the module is callable
    if name == "finetune":
        import sesame.finetune as module

        return module
    raise AttributeError(f"module 'sesame' has no attribute {name!r}")
