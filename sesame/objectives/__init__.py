"""Pre-training objectives, one file each, registered by name."""
from sesame.objectives.base import IGNORE, Vocab
from sesame.objectives.clm import CLM
from sesame.objectives.mlm import MLM

__all__ = ["IGNORE", "Vocab", "CLM", "MLM"]
