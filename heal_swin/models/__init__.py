"""Models: HEAL-SWIN, the flat Swin-UNet baseline and S2CNN, all through one registry."""

from heal_swin.models.registry import create_model, default_cfg, list_models, model_config, register_model

__all__ = ["create_model", "default_cfg", "list_models", "model_config", "register_model"]
