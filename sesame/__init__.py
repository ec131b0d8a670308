"""sesame: build, pre-train, compress, fine-tune and apply Transformer language models."""
from sesame.errors import SesameError

__version__ = "0.1.0"
__all__ = ["SesameError", "__version__"]


def pipeline(task: str, model_dir, weights: str = "fp32"):
    """``sesame.pipeline("fill-mask", "runs/demo/model")``: see ``sesame.pipelines``."""
    from sesame.pipelines import pipeline as _pipeline

    return _pipeline(task, model_dir, weights)
