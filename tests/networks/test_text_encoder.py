from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from monai_lesiongen.networks import FrozenTextEncoder, default_text_encoder_path


@pytest.fixture(scope="module")
def minilm() -> FrozenTextEncoder:
    return FrozenTextEncoder(max_length=16, cache_size=8)


def _tiny_bert(folder: Path) -> Path:
    tokenizer = BertTokenizerFast.from_pretrained(default_text_encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _tiny_stable_diffusion_text_encoder(root: Path) -> Path:
    """A Stable Diffusion folder's text_encoder/ + tokenizer/ pair, with a tiny CLIP and a tiny BPE vocabulary."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*letters, *(c + "</w>" for c in letters), ",", ",</w>"]:
        vocab[token] = len(vocab)
    tokenizer_dir = root / "tokenizer"
    tokenizer_dir.mkdir(parents=True)
    (tokenizer_dir / "vocab.json").write_text(json.dumps(vocab))
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tokenizer_dir / "vocab.json"), str(tokenizer_dir / "merges.txt")).save_pretrained(tokenizer_dir)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    CLIPTextModel(config).save_pretrained(root / "text_encoder")
    return root / "text_encoder"


def test_shipped_minilm_gives_384_wide_token_states(minilm: FrozenTextEncoder) -> None:
    context = minilm.encode(["dermoscopy image of melanoma", "melanocytic nevus"])
    assert minilm.hidden_size == 384
    assert context.shape == (2, 16, 384)
    assert not torch.allclose(context[0], context[1])
    # padding carries no content into cross-attention
    _, attention_mask = minilm.tokenize(["melanocytic nevus"])
    assert attention_mask[0].sum() < 16
    assert torch.all(context[1][attention_mask[0] == 0] == 0)
    assert not any(p.requires_grad for p in minilm.parameters())


def test_null_context_is_the_empty_caption(minilm: FrozenTextEncoder) -> None:
    null = minilm.null_context(3)
    assert null.shape == (3, 16, 384)
    assert torch.allclose(null[0], minilm.encode([""])[0])
    assert not torch.allclose(null[0], minilm.encode(["melanoma"])[0])


def test_cache_returns_what_the_encoder_computes(minilm: FrozenTextEncoder) -> None:
    uncached = FrozenTextEncoder(max_length=16, cache_size=0)
    repeated = "basal cell carcinoma, arborizing vessels"
    captions = [repeated, "vascular lesion", repeated]
    first = minilm.encode(captions)
    second = minilm.encode(captions)
    assert torch.allclose(first, uncached.encode(captions), atol=1e-5)
    assert torch.equal(first, second)
    assert torch.equal(first[0], first[2])
    assert len(minilm._cache) <= minilm.cache_size


def test_tiny_random_bert_from_a_local_folder(tmp_path: Path) -> None:
    encoder = FrozenTextEncoder(_tiny_bert(tmp_path / "bert"), max_length=12)
    context = encoder.encode(["irregular border"])
    assert encoder.hidden_size == 24
    assert context.shape == (1, 12, 24)
    encoder.train()
    assert not encoder.encoder.training


def test_stable_diffusion_clip_text_encoder_finds_its_sibling_tokenizer(tmp_path: Path) -> None:
    encoder = FrozenTextEncoder(_tiny_stable_diffusion_text_encoder(tmp_path / "sd"), max_length=77)
    assert type(encoder.encoder).__name__ == "CLIPTextModel"
    assert encoder.hidden_size == 32
    context = encoder.encode(["melanoma, blue veil", "nevus"])
    assert context.shape == (2, 77, 32)
    assert torch.isfinite(context).all()


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no config.json"):
        FrozenTextEncoder(tmp_path / "nowhere")
