from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_lesiongen.data import demo
from monai_lesiongen.data.demo import (
    DEMO_COLUMNS,
    DEMO_CSV_NAME,
    DEMO_IMAGE_DIRS,
    DEMO_MASK_DIR,
    ensure_demo_dataset,
    write_demo_dataset,
)
from monai_lesiongen.data.vocabulary import FITZPATRICK_TYPES, HAM10000_CLASSES, SEVEN_POINT_CONCEPTS

HAM_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
SITES = {
    "back",
    "lower extremity",
    "trunk",
    "upper extremity",
    "abdomen",
    "face",
    "chest",
    "foot",
    "neck",
    "scalp",
    "hand",
    "ear",
    "genital",
    "acral",
    "unknown",
}


def read_rows(root: Path) -> list[dict[str, str]]:
    with open(root / DEMO_CSV_NAME, newline="") as handle:
        return list(csv.DictReader(handle))


def image_path(root: Path, image_id: str) -> Path:
    for folder in DEMO_IMAGE_DIRS:
        if (root / folder / f"{image_id}.jpg").exists():
            return root / folder / f"{image_id}.jpg"
    raise FileNotFoundError(image_id)


def load(root: Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(image_path(root, image_id)))
    mask = np.asarray(Image.open(root / DEMO_MASK_DIR / f"{image_id}_segmentation.png"))
    return image, mask


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small_demo")
    write_demo_dataset(root, num_images=40, image_size=32, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def learn(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, str]], list[np.ndarray], list[np.ndarray]]:
    root = tmp_path_factory.mktemp("learn_demo")
    write_demo_dataset(root, num_images=420, image_size=32, seed=1, progress=False)
    rows = read_rows(root)
    pairs = [load(root, row["image_id"]) for row in rows]
    return rows, [p[0].astype(float) / 255.0 for p in pairs], [p[1] > 0 for p in pairs]


def test_layout(small: Path) -> None:
    with open(small / DEMO_CSV_NAME, newline="") as handle:
        header = next(csv.reader(handle))
    assert header == list(DEMO_COLUMNS)
    assert header == [*HAM_COLUMNS, "fitzpatrick", *SEVEN_POINT_CONCEPTS]
    rows = read_rows(small)
    assert len(rows) == 40
    ids = [row["image_id"] for row in rows]
    assert ids == [f"ISIC_{24306 + i:07d}" for i in range(40)]
    assert all(re.fullmatch(r"HAM_\d{7}", row["lesion_id"]) for row in rows)
    assert sorted(p.name for p in (small / DEMO_IMAGE_DIRS[0]).iterdir()) == [f"{i}.jpg" for i in ids[:20]]
    assert sorted(p.name for p in (small / DEMO_IMAGE_DIRS[1]).iterdir()) == [f"{i}.jpg" for i in ids[20:]]
    assert sorted(p.name for p in (small / DEMO_MASK_DIR).iterdir()) == [f"{i}_segmentation.png" for i in ids]
    with Image.open(small / DEMO_IMAGE_DIRS[0] / f"{ids[0]}.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (32, 32))


def test_metadata_values(learn: tuple) -> None:
    rows = learn[0]
    assert {row["dx"] for row in rows} == set(HAM10000_CLASSES)
    assert {row["fitzpatrick"] for row in rows} == {str(t) for t in FITZPATRICK_TYPES}
    for row in rows:
        assert row["dx_type"] in {"histo", "follow_up", "consensus", "confocal"}
        assert row["age"] == "" or float(row["age"]) % 5 == 0
        assert row["sex"] in {"male", "female", "unknown"}
        assert row["localization"] in SITES
        for name, values in SEVEN_POINT_CONCEPTS.items():
            assert row[name] in values
    assert all(row["dx_type"] == "histo" for row in rows if row["dx"] == "mel")
    dx = Counter(row["dx"] for row in rows)
    assert dx.most_common(1)[0][0] == "nv" and 0.25 < dx["nv"] / len(rows) < 0.35
    per_lesion = Counter(row["lesion_id"] for row in rows)
    assert 1.15 < len(rows) / len(per_lesion) < 1.5 and max(per_lesion.values()) == 2


def test_views_of_one_lesion(learn: tuple) -> None:
    rows, images, _ = learn
    by_lesion: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_lesion.setdefault(row["lesion_id"], []).append(index)
    pairs = [indices for indices in by_lesion.values() if len(indices) == 2]
    assert pairs
    same = [*HAM_COLUMNS[2:], "fitzpatrick", *SEVEN_POINT_CONCEPTS]
    for first, second in pairs:
        assert [rows[first][k] for k in same] == [rows[second][k] for k in same]
        assert not np.array_equal(images[first], images[second])


def test_masks(learn: tuple) -> None:
    rows, images, masks = learn
    contrast = []
    for image, mask in zip(images, masks, strict=True):
        assert mask.shape == image.shape[:2] and 0 < mask.sum() < mask.size
        contrast.append(255.0 * np.linalg.norm(image[mask].mean(0) - image[~mask].mean(0)))
    assert min(contrast) > 6.0 and np.median(contrast) > 30.0
    skin = np.array([int(row["fitzpatrick"]) for row in rows])
    # lesions stay visible on dark skin, with lower contrast, as in real dermoscopy
    assert np.median(np.array(contrast)[skin >= 5]) < np.median(np.array(contrast)[skin <= 2])
    area = {
        dx: np.mean([m.mean() for m, row in zip(masks, rows, strict=True) if row["dx"] == dx]) for dx in ("df", "mel")
    }
    assert 0.05 < area["df"] < area["mel"] < 0.5


def test_mask_files_binary(small: Path) -> None:
    for path in (small / DEMO_MASK_DIR).iterdir():
        with Image.open(path) as mask:
            assert mask.format == "PNG" and mask.mode == "L" and mask.size == (32, 32)
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_determinism(small: Path, tmp_path: Path) -> None:
    write_demo_dataset(tmp_path / "same", num_images=40, image_size=32, seed=0, progress=False)
    write_demo_dataset(tmp_path / "other", num_images=40, image_size=32, seed=5, progress=False)
    assert (tmp_path / "same" / DEMO_CSV_NAME).read_bytes() == (small / DEMO_CSV_NAME).read_bytes()
    for row in read_rows(small):
        for got, expected in zip(load(tmp_path / "same", row["image_id"]), load(small, row["image_id"]), strict=True):
            np.testing.assert_array_equal(got, expected)
    assert (tmp_path / "other" / DEMO_CSV_NAME).read_bytes() != (small / DEMO_CSV_NAME).read_bytes()
    assert not np.array_equal(load(tmp_path / "other", "ISIC_0024306")[0], load(small, "ISIC_0024306")[0])


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    write_demo_dataset(tmp_path, num_images=10, image_size=16, progress=False)
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path / DEMO_CSV_NAME))):
        write_demo_dataset(tmp_path, num_images=4, image_size=16, progress=False)
    write_demo_dataset(tmp_path, num_images=4, image_size=16, progress=False, overwrite=True)
    assert len(read_rows(tmp_path)) == 4
    assert len(list((tmp_path / DEMO_MASK_DIR).iterdir())) == 4  # no image of the old data set is left
    with pytest.raises(ValueError, match="num_images"):
        write_demo_dataset(tmp_path / "x", num_images=0)
    with pytest.raises(ValueError, match="image_size"):
        write_demo_dataset(tmp_path / "x", image_size=8)


def test_ensure_demo_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ensure_demo_dataset(tmp_path, num_images=6, image_size=16, progress=False) == tmp_path
    before = (tmp_path / DEMO_CSV_NAME).read_bytes()

    def fail(*args: object, **kwargs: object) -> Path:
        raise AssertionError("the data set was written again")

    monkeypatch.setattr(demo, "write_demo_dataset", fail)
    assert ensure_demo_dataset(tmp_path, num_images=6, image_size=16, progress=False) == tmp_path
    assert (tmp_path / DEMO_CSV_NAME).read_bytes() == before


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = [sys.executable, "-m", "monai_lesiongen.data.demo", str(tmp_path), "--n", "12", "--size", "16"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for text in ("12 images", "diagnosis: akiec", "Fitzpatrick type: 1", "concept present: pigment_network", "folder:"):
        assert text in done.stdout
    assert str(tmp_path.resolve()) in done.stdout
    with pytest.raises(SystemExit) as refused:
        demo.main([str(tmp_path), "--n", "12", "--size", "16"])
    assert refused.value.code != 0 and "already exists" in capsys.readouterr().err
    demo.main([str(tmp_path), "--n", "5", "--size", "16", "--seed", "3", "--overwrite"])
    assert "5 images" in capsys.readouterr().out


def test_concepts_in_pixels(learn: tuple) -> None:
    rows, images, masks = learn

    def blueness(index: int) -> float:  # blue minus red inside the lesion: blue-grey structures raise it
        inside = images[index][masks[index]]
        return float((inside[:, 2] - inside[:, 0]).mean())

    veil = [blueness(i) for i, row in enumerate(rows) if row["blue_whitish_veil"] == "present"]
    no_veil = [blueness(i) for i, row in enumerate(rows) if row["blue_whitish_veil"] == "absent"]
    assert np.mean(veil) > np.mean(no_veil) + 0.05

    def fine_detail(index: int) -> float:  # mean absolute Laplacian away from the border: lines and dots raise it
        grey, inner = images[index].mean(-1), masks[index]
        for _ in range(2):
            inner = inner & np.roll(inner, 1, 0) & np.roll(inner, -1, 0) & np.roll(inner, 1, 1) & np.roll(inner, -1, 1)
        laplacian = 4 * grey - sum(np.roll(grey, shift, axis) for shift in (1, -1) for axis in (0, 1))
        return float(np.abs(laplacian[inner]).mean()) if inner.sum() > 4 else float("nan")

    melanocytic = [i for i, row in enumerate(rows) if row["dx"] in ("nv", "mel")]
    network = [fine_detail(i) for i in melanocytic if rows[i]["pigment_network"] != "absent"]
    no_network = [fine_detail(i) for i in melanocytic if rows[i]["pigment_network"] == "absent"]
    assert np.nanmean(network) > 1.25 * np.nanmean(no_network)

    def white_share(index: int) -> float:
        return float((images[index][masks[index]].min(1) > 0.7).mean())

    scar = [
        white_share(i) for i, row in enumerate(rows) if row["regression_structures"] in ("white areas", "combinations")
    ]
    no_scar = [white_share(i) for i, row in enumerate(rows) if row["regression_structures"] == "absent"]
    assert np.mean(scar) > 1.5 * np.mean(no_scar)

    def redness(index: int) -> float:  # red over green inside the lesion
        inside = images[index][masks[index]]
        return float((inside[:, 0] - inside[:, 1]).mean())

    vasc = [redness(i) for i, row in enumerate(rows) if row["dx"] == "vasc"]
    nv = [redness(i) for i, row in enumerate(rows) if row["dx"] == "nv"]
    assert np.mean(vasc) > np.mean(nv) + 0.05


def features(image: np.ndarray, mask: np.ndarray) -> list[float]:
    inside, outside = image[mask], image[~mask]
    red, green, blue = inside.T
    edge = (mask ^ np.roll(mask, 1, 0)) | (mask ^ np.roll(mask, 1, 1))
    return [
        *inside.mean(0),
        *inside.std(0),
        *(inside.mean(0) - outside.mean(0)),
        *(inside.mean(0) / outside.mean(0)),
        mask.mean(),
        edge.sum() ** 2 / mask.sum(),
        (blue > red).mean(),
        (red > 1.5 * green).mean(),
        (inside.min(1) > 0.75).mean(),
        (inside.max(1) < 0.25).mean(),
    ]


def test_learnable_but_not_trivial(learn: tuple) -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert sklearn
    rows, images, masks = learn
    x = np.array([features(image, mask) for image, mask in zip(images, masks, strict=True)])
    y = np.array([row["dx"] for row in rows])
    groups = np.array([row["lesion_id"] for row in rows])
    train, test = next(GroupShuffleSplit(1, test_size=0.3, random_state=0).split(x, y, groups))
    assert not set(groups[train]) & set(groups[test])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], y[train])
    score = balanced_accuracy_score(y[test], model.predict(x[test]))
    assert 0.45 < score < 0.99, score  # measured 0.8-0.9 (chance is 1/7)
