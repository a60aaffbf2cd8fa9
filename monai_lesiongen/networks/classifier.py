"""Noise-aware classifiers for classifier-induced training and classifier guidance, and their export.

Two forms, one interface ``forward(x, timesteps=None) -> logits`` (timestep 0, the clean image, by default):

- `NoiseAwareClassifier`: MONAI's `DiffusionModelEncoder` (the timestep-conditioned encoder-classifier of MONAI
  Generative, Wolleb et al. 2022), standing alone, on pixels or on autoencoder latents;
- `SharedEncoderClassifier`: a pooled linear head on the denoiser's own time embedding, input convolution, down blocks
  and middle block, so the classifier is trained inside the diffusion model and its encoder is the denoiser's.

`export_classifier` writes either as a network that runs without the rest of the package's training parts: its
weights, a MONAI bundle-style config that rebuilds it (`load_classifier`), and a traced TorchScript file.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.networks.nets.diffusion_model_unet import DiffusionModelEncoder, get_timestep_embedding
from monai.networks.utils import convert_to_torchscript
from torch import nn

from monai_lesiongen.data.vocabulary import HAM10000_CLASSES, MALIGNANT_HAM10000_CLASSES
from monai_lesiongen.networks.denoiser import ConditionedDiffusionUNet

__all__ = [
    "NoiseAwareClassifier",
    "SharedEncoderClassifier",
    "benign_malignant_label_map",
    "denoiser_config",
    "export_classifier",
    "load_classifier",
    "unique_parameters",
]

CONFIG_NAME = "classifier_config.json"
WEIGHTS_NAME = "classifier.pt"
TORCHSCRIPT_NAME = "classifier.ts"


def _default_timesteps(x: torch.Tensor, timesteps: torch.Tensor | None) -> torch.Tensor:
    if timesteps is None:
        return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    return timesteps.to(x.device).expand(x.shape[0]) if timesteps.ndim == 0 else timesteps.to(x.device)


class NoiseAwareClassifier(nn.Module):
    """A timestep-conditioned classifier: MONAI's `DiffusionModelEncoder` with its sizes as arguments.

    It classifies a noised sample x_t at its timestep t, which classifier guidance needs, and a clean image at
    t = 0. Every level halves the image (as in `DiffusionModelEncoder`), and the flattened last feature map feeds
    its two-layer head, so `spatial_size` must be the size the classifier will see.

    Args:
        image_channels: input channels (3 for RGB pixels, or the autoencoder's latent channels).
        num_classes: number of classes (7 for HAM10000 diagnoses, 2 for benign/malignant).
        spatial_size: (H, W) of the inputs.
        channels: output channels of each level.
        attention_levels: which levels have self-attention.
        num_res_blocks: residual blocks per level.
        num_head_channels: channels per attention head.
        norm_num_groups: groups of the group norms.
        use_flash_attention: use PyTorch's SDPA attention.

    Raises:
        ValueError: for fewer than 2 classes, a spatial size that is not 2D, or sizes group norm cannot divide.
    """

    def __init__(
        self,
        image_channels: int = 3,
        num_classes: int = 7,
        spatial_size: Sequence[int] = (32, 32),
        channels: Sequence[int] = (32, 64, 64),
        attention_levels: Sequence[bool] = (False, False, True),
        num_res_blocks: int = 1,
        num_head_channels: int = 32,
        norm_num_groups: int = 32,
        use_flash_attention: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        if len(spatial_size) != 2:
            raise ValueError(f"spatial_size must be (H, W), got {tuple(spatial_size)}.")
        if any(c % norm_num_groups for c in channels):
            raise ValueError(
                f"every entry of channels {tuple(channels)} must divide by norm_num_groups={norm_num_groups}."
            )
        self.num_classes = num_classes
        self.config: dict[str, Any] = {
            "image_channels": image_channels,
            "num_classes": num_classes,
            "spatial_size": [int(s) for s in spatial_size],
            "channels": [int(c) for c in channels],
            "attention_levels": [bool(a) for a in attention_levels],
            "num_res_blocks": num_res_blocks,
            "num_head_channels": num_head_channels,
            "norm_num_groups": norm_num_groups,
            "use_flash_attention": use_flash_attention,
        }
        self.encoder = DiffusionModelEncoder(
            spatial_dims=2,
            in_channels=image_channels,
            out_channels=num_classes,
            input_shape=tuple(spatial_size),
            num_res_blocks=num_res_blocks,
            channels=channels,
            attention_levels=attention_levels,
            norm_num_groups=norm_num_groups,
            num_head_channels=num_head_channels,
            use_flash_attention=use_flash_attention,
        )

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, num_classes) of x_t (B, C, H, W) at `timesteps` (B,); timestep 0 when None."""
        logits: torch.Tensor = self.encoder(x, _default_timesteps(x, timesteps))
        return logits


class SharedEncoderClassifier(nn.Module):
    """A classifier head on the encoder of a `ConditionedDiffusionUNet`, sharing its parameters.

    The denoiser's time embedding, input convolution, down blocks and middle block are registered here as they are
    (the same parameter objects), and a group norm, SiLU, global average pool and linear layer turn the middle
    block's features into logits. A class-conditioned denoiser's encoder sees the null class here (the classifier is
    not told the answer), and a text-conditioned one the zero context, as the denoiser's unconditional pass does.

    Only `head` is the classifier's own (``unique_parameters(classifier, exclude=[denoiser])``).

    Args:
        denoiser: the denoiser whose encoder is shared.
        num_classes: number of classes.

    Raises:
        ValueError: for fewer than 2 classes.
    """

    def __init__(self, denoiser: ConditionedDiffusionUNet, num_classes: int = 7) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        self.num_classes = num_classes
        self.time_channels = int(denoiser.block_out_channels[0])
        self.null_class_label = denoiser.null_class_label
        self.cross_attention_dim = denoiser.cross_attention_dim
        self.config: dict[str, Any] = {"denoiser": denoiser_config(denoiser), "num_classes": num_classes}
        self.time_embed = denoiser.time_embed
        self.class_embedding = denoiser.class_embedding if denoiser.num_classes is not None else None
        self.conv_in = denoiser.conv_in
        self.down_blocks = denoiser.down_blocks
        self.middle_block = denoiser.middle_block
        features = int(denoiser.block_out_channels[-1])
        norm_groups = _norm_num_groups(denoiser)
        self.head = nn.Sequential(
            nn.GroupNorm(norm_groups, features, eps=1e-6),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(features, num_classes),
        )

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, num_classes) of x_t (B, C, H, W) at `timesteps` (B,); timestep 0 when None."""
        batch = x.shape[0]
        t_emb = get_timestep_embedding(_default_timesteps(x, timesteps), self.time_channels).to(dtype=x.dtype)
        emb = self.time_embed(t_emb)
        if self.class_embedding is not None and self.null_class_label is not None:
            null = torch.full((batch,), self.null_class_label, dtype=torch.long, device=x.device)
            emb = emb + self.class_embedding(null).to(dtype=x.dtype)
        context = None
        if self.cross_attention_dim is not None:
            context = torch.zeros(batch, 1, self.cross_attention_dim, dtype=x.dtype, device=x.device)
        h = self.conv_in(x)
        for block in self.down_blocks:
            h, _ = block(hidden_states=h, temb=emb, context=context)
        h = self.middle_block(hidden_states=h, temb=emb, context=context)
        logits: torch.Tensor = self.head(h)
        return logits


def _norm_num_groups(denoiser: ConditionedDiffusionUNet) -> int:
    norm = denoiser.out[0]
    if not isinstance(norm, nn.GroupNorm):
        raise ValueError(f"expected the denoiser's output block to start with a GroupNorm, got {type(norm).__name__}.")
    return int(norm.num_groups)


def denoiser_config(denoiser: ConditionedDiffusionUNet) -> dict[str, Any]:
    """The constructor arguments of a `ConditionedDiffusionUNet`, read from the network (to rebuild its encoder)."""
    use_flash = next(
        (bool(m.use_flash_attention) for m in denoiser.modules() if hasattr(m, "use_flash_attention")), True
    )
    return {
        "_target_": "monai_lesiongen.networks.ConditionedDiffusionUNet",
        "image_channels": denoiser.image_channels,
        "mask_channels": denoiser.mask_channels,
        "channels": [int(c) for c in denoiser.block_out_channels],
        "attention_levels": [bool(a) for a in denoiser.attention_levels],
        "num_res_blocks": [int(n) for n in denoiser.num_res_blocks],
        "num_head_channels": [int(n) for n in denoiser.num_head_channels],
        "cross_attention_dim": denoiser.cross_attention_dim,
        "num_classes": denoiser.num_classes,
        "norm_num_groups": _norm_num_groups(denoiser),
        "use_flash_attention": use_flash,
    }


def benign_malignant_label_map(
    class_names: Sequence[str] = HAM10000_CLASSES, malignant: Collection[str] = MALIGNANT_HAM10000_CLASSES
) -> list[int]:
    """The map from diagnosis index to binary label (0 benign, 1 malignant): ``label_map[diagnosis]``.

    Pass it as `label_map` to the classifier losses and the guidance to train and steer a ``num_classes=2``
    classifier with the diagnosis labels of the data set, as Class-N-Diff's benign/malignant task.

    Raises:
        ValueError: when a malignant code is not among `class_names`.
    """
    unknown = sorted(set(malignant) - set(class_names))
    if unknown:
        raise ValueError(f"malignant classes {unknown} are not in class_names {list(class_names)}.")
    return [int(name in malignant) for name in class_names]


def unique_parameters(*modules: nn.Module, exclude: Sequence[nn.Module] = ()) -> list[nn.Parameter]:
    """The parameters of all `modules`, each once, without those of `exclude`.

    A shared-encoder classifier holds the denoiser's parameters: ``unique_parameters(classifier, exclude=[denoiser])``
    is its head only, and ``unique_parameters(denoiser, classifier)`` everything the joint training updates.
    """
    seen = {id(p) for module in exclude for p in module.parameters()}
    parameters = []
    for module in modules:
        for parameter in module.parameters():
            if id(parameter) not in seen:
                seen.add(id(parameter))
                parameters.append(parameter)
    return parameters


def export_classifier(
    classifier: NoiseAwareClassifier | SharedEncoderClassifier,
    output_dir: str | Path,
    class_names: Sequence[str] | None = None,
    trace: bool = True,
    spatial_size: Sequence[int] | None = None,
) -> Path:
    """Write a classifier as a standalone network: ``classifier.pt`` (state dict), ``classifier_config.json``
    (a MONAI bundle-style config, ``network_def`` and ``class_names``) and, with `trace`, ``classifier.ts``
    (TorchScript by tracing, inputs ``(x, timesteps)``). `load_classifier` rebuilds it from the first two.

    A shared-encoder classifier is written with only the parts of the denoiser it uses (no decoder).

    Args:
        classifier: the classifier.
        output_dir: the folder to write to.
        class_names: the names of its classes, in output order.
        trace: also write the TorchScript file.
        spatial_size: (H, W) of the example input to trace with; the classifier's own size by default (32 x 32 for a
            shared-encoder classifier, whose pooled head takes any size).

    Returns:
        The folder.

    Raises:
        ValueError: when the number of class names differs from the classifier's classes.
    """
    if class_names is not None and len(class_names) != classifier.num_classes:
        raise ValueError(f"got {len(class_names)} class_names for a classifier of {classifier.num_classes} classes.")
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = f"{type(classifier).__module__}.{type(classifier).__name__}"
    config = {
        "network_def": {"_target_": target, **classifier.config},
        "class_names": list(class_names) if class_names is not None else None,
    }
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2), encoding="utf-8")
    state = {k: v.detach().cpu() for k, v in classifier.state_dict().items()}
    torch.save(state, folder / WEIGHTS_NAME)
    if trace:
        was_training = classifier.training
        classifier.eval()
        parameter = next(classifier.parameters())
        size = spatial_size or classifier.config.get("spatial_size") or (32, 32)
        channels = classifier.config.get("image_channels") or classifier.config["denoiser"]["image_channels"]
        example = torch.zeros(1, channels, *size, dtype=parameter.dtype, device=parameter.device)
        steps = torch.zeros(1, dtype=torch.long, device=parameter.device)
        convert_to_torchscript(classifier, str(folder / TORCHSCRIPT_NAME), use_trace=True, inputs=[example, steps])
        classifier.train(was_training)
    return folder


def load_classifier(
    directory: str | Path, map_location: str | torch.device = "cpu"
) -> NoiseAwareClassifier | SharedEncoderClassifier:
    """Rebuild a classifier written by `export_classifier` and load its weights (in eval mode).

    Raises:
        FileNotFoundError: when the folder lacks the config or the weights.
    """
    folder = Path(directory)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing: point `directory` at a folder export_classifier wrote."
            )
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    classifier = ConfigParser({"network_def": config["network_def"]}).get_parsed_content("network_def")
    classifier.load_state_dict(torch.load(folder / WEIGHTS_NAME, map_location=map_location, weights_only=True))
    return classifier.eval()
