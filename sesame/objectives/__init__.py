"""Pre-training objectives, one file each, registered by name."""
from sesame.objectives.base import IGNORE, Vocab
from sesame.objectives.clm import CLM
from sesame.objectives.compose import Composite, build_objective
from sesame.objectives.electra import ELECTRA
from sesame.objectives.mlm import MLM
from sesame.objectives.sbo import SBO
from sesame.objectives.sentence import NSP, SOP
from sesame.objectives.simcse import SimCSE
from sesame.objectives.unilm import UniLM

__all__ = ["IGNORE", "Vocab", "CLM", "MLM", "NSP", "SOP", "SBO", "ELECTRA", "UniLM", "SimCSE", "Composite",
           "build_objective"]
