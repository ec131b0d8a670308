"""Pre-training objectives, one file each, registered by name."""
from sesame.objectives.base import IGNORE, Vocab
from sesame.objectives.clm import CLM
from sesame.objectives.mlm import MLM
from sesame.objectives import denoise, mass, t5_span  # noqa: F401  (register bart, mass, t5-span)

__all__ = ["IGNORE", "Vocab", "CLM", "MLM"]
