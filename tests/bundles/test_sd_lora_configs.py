"""The Stable Diffusion + LoRA configurations parse and build their parts from a tiny Stable Diffusion folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from monai.transforms import LoadImage, Randomizable, Resize
from peft.tuners.tuners_utils import BaseTunerLayer
from PIL import Image
from tiny_stable_diffusion import PREDICTION_TYPE, write_tiny_sd

from monai_lesiongen.networks import ConditionedDiffusionUNet, LoraWeights, StableDiffusionAutoencoderKL, save_lora
from monai_lesiongen.transforms import BuildCaptiond, RandMirroredLatentd

pytest.importorskip("diffusers")

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sd(tmp_path_factory.mktemp("sd"))


def _parser(bundle: str, sd_folder: Path, root: Path, inference: bool = False) -> ConfigParser:
    configs = BUNDLES / bundle / "configs"
    files = ["train.yaml", "train_sd_lora.yaml"] + (["inference.yaml", "inference_sd_lora.yaml"] if inference else [])
    parser = ConfigParser()
    parser.read_config([str(configs / name) for name in files])
    parser.update({"bundle_root": str(root), "sd_path": str(sd_folder), "device": "$torch.device('cpu')"})
    parser.update({"image_dim": 32, "lora_rank": 4, "lora_alpha": 4})
    return parser


def test_lesiongen_sd_lora_builds_the_imported_parts(sd_folder: Path, tmp_path: Path) -> None:
    parser = _parser("lesiongen", sd_folder, tmp_path)
    network = parser.get_parsed_content("network")
    assert isinstance(network, ConditionedDiffusionUNet) and network.cross_attention_dim == 24
    assert any(isinstance(module, BaseTunerLayer) for module in network.modules())
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = parser.get_parsed_content("optimizer")
    assert [id(p) for p in optimizer.param_groups[0]["params"]] == [id(p) for p in trainable]
    assert sum(p.numel() for p in trainable) < 0.2 * sum(p.numel() for p in network.parameters())
    assert isinstance(parser.get_parsed_content("scheduler"), DDPMScheduler)
    sampling = parser.get_parsed_content("sampling_scheduler")
    assert isinstance(sampling, DDIMScheduler) and not sampling.clip_sample
    assert parser.get_parsed_content("prediction_type") == PREDICTION_TYPE  # from the folder's scheduler config
    autoencoder = parser.get_parsed_content("autoencoder")
    assert isinstance(autoencoder, StableDiffusionAutoencoderKL)
    assert not any(p.requires_grad for p in autoencoder.parameters())
    assert parser.get_parsed_content("scale_factor") == 0.25
    assert parser.get_parsed_content("sample_channels") == 4 and parser.get_parsed_content("sample_dim") == 16
    assert parser.get_parsed_content("text_encoder_path") == str(sd_folder / "text_encoder")
    assert parser.get_parsed_content("text_encoder").hidden_size == 24  # <sd>/text_encoder, the UNet's context width
    assert isinstance(parser.get_parsed_content("checkpoint_objects#network"), LoraWeights)
    # the latent round trip the bundle's encoder and decoder transforms do
    encoded = parser.get_parsed_content("image_encoder")({"image": torch.zeros(3, 32, 32)})["image"]
    assert encoded.shape == (4, 16, 16)
    assert parser.get_parsed_content("image_decoder")(encoded[None]).shape == (1, 3, 32, 32)
    with torch.no_grad():
        output = network(torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 3, 24))
    assert output.shape == (1, 4, 16, 16)


def test_skindualgen_sd_lora_widens_the_unet_and_pairs_latents_with_masks(sd_folder: Path, tmp_path: Path) -> None:
    parser = _parser("skindualgen", sd_folder, tmp_path)
    network = parser.get_parsed_content("network")
    assert (network.in_channels, network.out_channels, network.mask_channels) == (5, 5, 1)
    trainable = {name for name, p in network.named_parameters() if p.requires_grad}
    assert {"conv_in.modules_to_save.default.conv.weight", "out.2.modules_to_save.default.conv.weight"} <= trainable
    assert parser.get_parsed_content("sample_channels") == 5 and parser.get_parsed_content("sample_dim") == 16
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[10:30, 12:28] = 255
    Image.fromarray(image).save(tmp_path / "image.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    record = {"image": str(tmp_path / "image.png"), "mask": str(tmp_path / "mask.png"), "caption": "a", "label": 0}
    for transform in parser.get_parsed_content("train#preprocessing").transforms:
        if not isinstance(transform, BuildCaptiond):  # captions are tested with the pixel-space bundle
            record = transform(record)
    assert record["image"].shape == (5, 16, 16)  # 4 latent channels and the mask on the latent grid
    assert set(record["image"][4].unique().tolist()) == {-1.0, 1.0}
    with torch.no_grad():
        pair = parser.get_parsed_content("pair_decoder")(record["image"][None])
        output = network(record["image"][None], torch.tensor([10]), torch.randn(1, 3, 24))
    assert pair.shape == (1, 4, 32, 32) and output.shape == (1, 5, 16, 16)
    assert parser.get_parsed_content("sampler#decoder") is parser.get_parsed_content("pair_decoder")


@pytest.mark.parametrize("bundle", ["lesiongen", "skindualgen"])
def test_inference_loads_the_adapters_and_writes_decoded_images(sd_folder: Path, tmp_path: Path, bundle: str) -> None:
    """Two sampling steps for one prompt: the saved adapters load onto the imported UNet and samples are decoded."""
    trained = _parser(bundle, sd_folder, tmp_path)
    network = trained.get_parsed_content("network")
    with torch.no_grad():
        next(p for name, p in network.named_parameters() if "lora_B" in name).fill_(0.5)  # non-trivial adapters
    save_lora(network, trained.get_parsed_content("ckpt_path"))
    parser = _parser(bundle, sd_folder, tmp_path, inference=True)
    parser.update({"num_samples": 1, "num_inference_steps": 2, "plan_classes": ["mel"], "plan_fitzpatrick_types": [2]})
    parser.get_parsed_content("inferring")
    loaded = parser.get_parsed_content("network")
    for (name, expected), actual in zip(network.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(expected, actual), name
    written = sorted((tmp_path / "outputs" / "synthetic").rglob("*.png"))
    images = [np.asarray(Image.open(path)) for path in written if not path.name.endswith("_segmentation.png")]
    masks = [np.asarray(Image.open(path)) for path in written if path.name.endswith("_segmentation.png")]
    assert [image.shape for image in images] == [(32, 32, 3)]  # decoded from 16 x 16 latents
    assert [mask.shape for mask in masks] == ([(32, 32)] if bundle == "skindualgen" else [])


def test_skindualgen_sd_lora_caches_both_latent_pairs_and_mirrors_image_and_mask_together(
    sd_folder: Path, tmp_path: Path
) -> None:
    parser = _parser("skindualgen", sd_folder, tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[4:20, 6:24] = 255  # off-centre, so that the mirror image differs
    Image.fromarray(image).save(tmp_path / "image.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    record = {"image": str(tmp_path / "image.png"), "mask": str(tmp_path / "mask.png"), "caption": "a", "label": 0}
    transforms = parser.get_parsed_content("train#preprocessing").transforms
    first_random = next(i for i, t in enumerate(transforms) if isinstance(t, Randomizable))
    assert isinstance(transforms[first_random], BuildCaptiond)  # everything before it is cached by the CacheDataset
    for transform in transforms[:first_random]:
        record = transform(record)
    pair, mirrored = record["image"], record["image_mirrored"]
    assert pair.shape == mirrored.shape == (5, 16, 16)
    assert not torch.equal(pair[4], pair[4].flip(1))
    assert torch.equal(mirrored[4], pair[4].flip(1))  # the mask mirrored with its image
    autoencoder, scale = parser.get_parsed_content("autoencoder"), parser.get_parsed_content("scale_factor")
    flip = RandMirroredLatentd(keys=["image"], prob=1.0)
    assert torch.equal(flip(dict(record))["image"], mirrored)
    with torch.no_grad():
        pixels = LoadImage(image_only=True, ensure_channel_first=True)(str(tmp_path / "image.png"))
        pixels = Resize((32, 32), mode="area")(pixels) / 127.5 - 1.0
        latent = autoencoder.encode(pixels.flip(2)[None].float())[0][0] * scale
    assert torch.allclose(mirrored[:4], latent, atol=1e-5)  # the latent of the mirror image, not a mirrored latent


@pytest.mark.parametrize("bundle", ["lesiongen", "skindualgen"])
def test_sd_lora_training_runs_and_saves_the_adapters(sd_folder: Path, tmp_path: Path, bundle: str) -> None:
    parser = _parser(bundle, sd_folder, tmp_path)
    parser.update(
        {"num_epochs": 1, "batch_size": 4, "sample_interval": 0, "num_workers": 0,
         "demo_kwargs": {"num_images": 16, "image_size": 32, "seed": 0}}
    )  # fmt: skip
    network = parser.get_parsed_content("network")
    before = {k: v.clone() for k, v in network.state_dict().items() if "lora_B" in k}
    parser.get_parsed_content("training")
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == len(parser.get_parsed_content("train#dataloader")) > 0
    after = network.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the adapters learned
    checkpoints = tmp_path / "outputs" / "checkpoints"
    assert (checkpoints / "lora.safetensors").is_file() and (checkpoints / "lora_ema.safetensors").is_file()
    assert (checkpoints / "checkpoint_final.pt").is_file() and not (checkpoints / "model.pt").exists()
