"""Pre-training objectives, one file each, registered by name."""
from sesame.objectives.base import IGNORE, Vocab
from sesame.objectives.clm import CLM
from sesame.objectives.compose import Composite, build_objective
from sesame.objectives.electra import ELECTRA
from sesame.objectives.mlm import MLM
from sesame.objectives.mask_plm import MaskPLM  # noqa: F401  (registers "mask-plm")
from sesame.objectives.plm import PLM  # noqa: F401  (registers "plm")
from sesame.objectives.xl_clm import XLCLM  # noqa: F401  (registers "xl-clm")
from sesame.objectives.sbo import SBO
from sesame.objectives.sentence import NSP, SOP
from sesame.objectives.simcse import SimCSE
from sesame.objectives.unilm import UniLM
from sesame.objectives import bilm, denoise, mass, t5_span  # noqa: F401  (register bilm, bart, mass, t5-span)

__all__ = ["IGNORE", "Vocab", "CLM", "MLM", "NSP", "SOP", "SBO", "ELECTRA", "UniLM", "SimCSE", "Composite",
           "build_objective"]
