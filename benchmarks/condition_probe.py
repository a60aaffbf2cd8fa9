"""Where does a generated image's skin colour come from: the requested skin type, or the starting noise?

For a trained text-conditioned bundle run (lesiongen, skindualgen), every diagnosis is drawn with the same seeds on
Fitzpatrick type I and on type VI. The script prints the mean ITA of the generated skin for each (and the real
images' gap), how much of the spread of ITA across seeds the skin type explains against the seed (a two-way split of
the variance), and the correlation of each image's ITA with the mean of its starting noise x_T. A generator that
follows the skin type has a large I-VI gap and a small seed share; one whose skin colour is decided by the low
frequencies of x_T has the opposite.

    python benchmarks/condition_probe.py --bundle lesiongen --run_dir runs/lesiongen_default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_lesiongen.bundle import load_network_weights
from monai_lesiongen.data import HAM10000_CLASSES, estimate_ita

ROOT = Path(__file__).resolve().parents[1]


def load_run(bundle: str, run_dir: Path, overrides: dict[str, Any]) -> ConfigParser:
    """The bundle's training config with the run's overrides, its EMA weights loaded into ``network``."""
    parser = ConfigParser()
    parser.read_config(str(ROOT / "bundles" / bundle / "configs" / "train.yaml"))
    parser["bundle_root"] = str(ROOT / "bundles" / bundle)
    for key, value in overrides.items():
        parser[key] = value
    network = parser.get_parsed_content("network")
    load_network_weights(network, str(run_dir / "checkpoints" / "model_ema.pt"), torch.device("cpu"))
    network.eval()
    return parser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", choices=("lesiongen", "skindualgen"), default="lesiongen")
    parser.add_argument("--run_dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--override", action="append", default=[], help="key=value (a JSON value)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, _, value in (o.partition("=") for o in args.override)}
    config = load_run(args.bundle, args.run_dir, overrides)
    network = config.get_parsed_content("network")
    sampler = config.get_parsed_content("sampler")
    builder = config.get_parsed_content("prompt_builder")
    captions, labels, types, seeds = [], [], [], []
    for label, name in enumerate(HAM10000_CLASSES):
        for skin in (1, 6):
            for seed in range(args.seeds):
                captions.append(builder({"label_name": name, "fitzpatrick": skin}))
                labels.append(label)
                types.append(skin)
                seeds.append(1000 + seed)
    class_labels = None  # the class condition beside the caption, when the run was trained with one
    classes = config.get_parsed_content("condition_classes", default=None)
    if classes is not None and classes.enabled:
        class_labels = [classes(label, skin) for label, skin in zip(labels, types, strict=True)]
    images = sampler(network, seeds, captions=captions, class_labels=class_labels)[:, :3]
    ita = np.array([estimate_ita(image, max_intensity=1.0) for image in images])
    noise_mean = sampler.initial_noise(seeds, torch.device("cpu")).mean(dim=(1, 2, 3)).numpy()
    types_array, seeds_array = np.array(types), np.array(seeds)
    by_skin = {skin: float(ita[types_array == skin].mean()) for skin in (1, 6)}
    # two-way split of the spread of ITA within each diagnosis: skin-type means vs seed means
    skin_share, seed_share = [], []
    for index in range(len(HAM10000_CLASSES)):
        rows = slice(index * 2 * args.seeds, (index + 1) * 2 * args.seeds)
        values, skin, seed = ita[rows], types_array[rows], seeds_array[rows]
        total = values.var() + 1e-9
        skin_share.append(np.var([values[skin == s].mean() for s in (1, 6)]) / total)
        seed_share.append(np.var([values[seed == s].mean() for s in np.unique(seed)]) / total)
    result = {
        "mean_ita_type_I": by_skin[1],
        "mean_ita_type_VI": by_skin[6],
        "gap_I_minus_VI": by_skin[1] - by_skin[6],
        "variance_share_skin_type": float(np.mean(skin_share)),
        "variance_share_seed": float(np.mean(seed_share)),
        "correlation_ita_with_noise_mean": float(np.corrcoef(ita, noise_mean)[0, 1]),
    }
    for key, value in result.items():
        print(f"{key}: {value:.3f}")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
