"""Models: bodies + heads assembled from a config; save/load; Hugging Face interop."""
from sesame.models.io import LoadReport, load_model, save_model
from sesame.models.model import Model, ModelOutput, build_model

__all__ = ["Model", "ModelOutput", "build_model", "load_model", "save_model", "LoadReport"]
