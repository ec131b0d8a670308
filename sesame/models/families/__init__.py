"""Model families: each file wires shared blocks, declares heads and its HF key map."""
import importlib

for _name in ("bert", "roberta", "albert", "distilbert", "electra", "gpt2", "llama", "longformer", "t5", "bart",
              "xlnet", "elmo"):
    try:
        importlib.import_module(f"sesame.models.families.{_name}")
    except ModuleNotFoundError as _err:  # a family not written yet
        if _err.name != f"sesame.models.families.{_name}":
            raise
