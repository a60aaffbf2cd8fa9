"""skindualgen's augment.yaml with tiny settings: caption, diagnosis x skin-type class, mask channel and the
classifier trained inside the model, which then guides the pairs towards the requested diagnosis."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bundle_workflow import TINY_CLASSIFIER, bundle_workflow, tiny_settings
from monai.bundle import ConfigWorkflow

from monai_lesiongen.data.readers import read_dataset

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "skindualgen"
TINY = tiny_settings(num_images=40, num_epochs=2, **TINY_CLASSIFIER)
AUGMENT = ["train.yaml", "augment.yaml"]


def _run(root: Path, files: list[str], run_id: str, workflow_type: str, **override) -> ConfigWorkflow:
    workflow = bundle_workflow(BUNDLE, root, files, run_id, workflow_type, {**TINY, **override})
    workflow.run()
    workflow.finalize()
    return workflow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("augment")
    workflow = _run(root, AUGMENT, "training", "train")
    output = workflow.parser.get_parsed_content("train#trainer").state.output[0]
    for term in ("loss_mask", "loss_classifier", "loss_classifier_induced"):
        assert float(output[term]) > 0, term
    return root


def test_training_trains_and_saves_the_classifier_with_the_model(trained: Path) -> None:
    checkpoints = trained / "outputs" / "checkpoints"
    saved = torch.load(checkpoints / "checkpoint_final.pt", map_location="cpu", weights_only=False)
    assert "classifier" in saved  # resumed with the rest of the model
    classifier = torch.load(checkpoints / "classifier.pt", map_location="cpu", weights_only=True)
    first = next(iter(classifier.values()))
    assert first.shape[1] == 4  # the classifier sees image and mask channels
    workflow = bundle_workflow(BUNDLE, trained, AUGMENT, "training", "train", TINY)
    network = workflow.parser.get_parsed_content("network")
    assert network.num_classes == 7 * 7  # diagnosis x (six types + unknown)


def test_classifier_guidance_moves_the_classifier_decision_and_writes_pairs(trained: Path) -> None:
    files = [*AUGMENT, "inference.yaml"]
    plan = {"num_samples": 2, "num_inference_steps": 4, "plan_classes": ["df", "vasc"], "plan_fitzpatrick_types": [2]}
    workflow = bundle_workflow(BUNDLE, trained, files, "inferring", "infer", {**TINY, **plan})
    parser = workflow.parser
    parser.get_parsed_content("load_weights")
    sampler, network = parser.get_parsed_content("inference_sampler"), parser.get_parsed_content("network")
    classifier = parser.get_parsed_content("classifier")
    rows = parser.get_parsed_content("inference_plan")
    captions, classes = [r["caption"] for r in rows] * 2, [r["condition_class"] for r in rows] * 2
    targets = torch.tensor(parser.get_parsed_content("classifier_target_map"))[torch.tensor(classes)]
    assert targets.tolist() == [3, 6, 3, 6]  # df, vasc
    seeds = list(range(len(captions)))

    def target_log_probability(scale: float) -> float:
        sampler.classifier_guidance.scale = scale
        with torch.no_grad():
            pairs = sampler(network, seeds, captions=captions, class_labels=classes) * 2 - 1
            logits = classifier.eval()(pairs, torch.zeros(len(seeds), dtype=torch.long))
        return float(torch.log_softmax(logits, -1).gather(1, targets.view(-1, 1)).mean())

    # the tiny classifier of two epochs is weak, so its gradient moves the samples by little per unit of scale
    unguided, guided, strongly = (target_log_probability(scale) for scale in (0.0, 200.0, 1000.0))
    assert unguided < guided < strongly and strongly > unguided + 0.2
    workflow.finalize()
    _run(trained, files, "inferring", "infer", **plan)
    records = read_dataset("isic2018_task1", trained / "outputs" / "synthetic")
    assert len(records) == 4 and all(r["mask"] for r in records)
