from __future__ import annotations

from .classifier import NoiseAwareClassifier, SharedEncoderClassifier, export_classifier, load_classifier
from .denoiser import ConditionedDiffusionUNet
from .io_channels import widen_io_channels
from .latent import LatentDecoder, latent_scale_factor
from .lora import DEFAULT_LORA_TARGETS, LoraWeights, add_lora, load_lora, lora_state_dict, merge_lora, save_lora
from .sd_autoencoder import StableDiffusionAutoencoderKL
from .sd_checkpoint import CheckpointMismatchError
from .sd_import import load_sd_autoencoder, load_sd_scheduler, load_sd_unet, sd_unet_arguments
from .text_encoder import FrozenTextEncoder, default_text_encoder_path

__all__ = [
    "CheckpointMismatchError",
    "ConditionedDiffusionUNet",
    "DEFAULT_LORA_TARGETS",
    "FrozenTextEncoder",
    "LatentDecoder",
    "LoraWeights",
    "NoiseAwareClassifier",
    "SharedEncoderClassifier",
    "StableDiffusionAutoencoderKL",
    "add_lora",
    "default_text_encoder_path",
    "export_classifier",
    "latent_scale_factor",
    "load_classifier",
    "load_lora",
    "load_sd_autoencoder",
    "load_sd_scheduler",
    "load_sd_unet",
    "lora_state_dict",
    "merge_lora",
    "save_lora",
    "sd_unet_arguments",
    "widen_io_channels",
]
