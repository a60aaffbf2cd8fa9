"""Fixtures writing tiny data sets (8x8 images) in each reader's official layout into `tmp_path`."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

HAM_HEADER = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
DERM7PT_HEADER = [
    "case_num",
    "diagnosis",
    "seven_point_score",
    "pigment_network",
    "streaks",
    "pigmentation",
    "regression_structures",
    "dots_and_globules",
    "blue_whitish_veil",
    "vascular_structures",
    "level_of_diagnostic_difficulty",
    "elevation",
    "location",
    "sex",
    "management",
    "clinic",
    "derm",
]


def write_image(path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Path:
    """Write a small uniform image (JPEG or PNG after the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)
    return path


def write_mask(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    """Write a binary lesion mask PNG: 255 in a centred rectangle (the lesion), 0 around it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = Image.new("L", size, 0)
    width, height = size
    mask.paste(255, (width // 4, height // 4, width - width // 4, height - height // 4))
    mask.save(path)
    return path


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def ham_root(tmp_path: Path) -> Path:
    """HAM10000: 3 images over the two part folders, a mask for the first only."""
    root = tmp_path / "ham"
    write_csv(
        root / "HAM10000_metadata.csv",
        HAM_HEADER,
        [
            ["HAM_0000118", "ISIC_0027419", "bkl", "histo", "80.0", "male", "scalp"],
            ["HAM_0000118", "ISIC_0025030", "bkl", "histo", "80.0", "male", "scalp"],
            ["HAM_0002730", "ISIC_0026769", "mel", "histo", "", "unknown", "unknown"],
        ],
    )
    write_image(root / "HAM10000_images_part_1" / "ISIC_0027419.jpg")
    write_image(root / "HAM10000_images_part_1" / "ISIC_0025030.jpg")
    write_image(root / "HAM10000_images_part_2" / "ISIC_0026769.jpg")
    write_mask(root / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0027419_segmentation.png")
    return root


@pytest.fixture
def isic_task1_root(tmp_path: Path) -> Path:
    """ISIC 2018 Task 1 training: 2 image/mask pairs (plus the licence file the official folder holds)."""
    root = tmp_path / "isic2018_task1"
    for image_id in ("ISIC_0000000", "ISIC_0000001"):
        write_image(root / "ISIC2018_Task1-2_Training_Input" / f"{image_id}.jpg")
        write_mask(root / "ISIC2018_Task1_Training_GroundTruth" / f"{image_id}_segmentation.png")
    (root / "ISIC2018_Task1-2_Training_Input" / "LICENSE.txt").write_text("CC-BY-NC")
    return root


@pytest.fixture
def isic_task3_root(tmp_path: Path) -> Path:
    """ISIC 2018 Task 3 training: 3 images, two of one lesion (lesion-grouping file)."""
    root = tmp_path / "isic2018_task3"
    truth = root / "ISIC2018_Task3_Training_GroundTruth"
    write_csv(
        truth / "ISIC2018_Task3_Training_GroundTruth.csv",
        ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"],
        [
            ["ISIC_0024306", "0.0", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0"],
            ["ISIC_0024307", "0.0", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0"],
            ["ISIC_0024310", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0", "0.0"],
        ],
    )
    write_csv(
        root / "ISIC2018_Task3_Training_LesionGroupings.csv",
        ["image", "lesion_id", "diagnosis_confirm_type"],
        [["ISIC_0024306", "HAM_0000550", "follow_up"], ["ISIC_0024307", "HAM_0000550", "follow_up"]],
    )
    for image_id in ("ISIC_0024306", "ISIC_0024307", "ISIC_0024310"):
        write_image(root / "ISIC2018_Task3_Training_Input" / f"{image_id}.jpg")
    return root


@pytest.fixture
def isic2019_root(tmp_path: Path) -> Path:
    """ISIC 2019: 3 images, one ``_downsampled``, one without a metadata lesion id."""
    root = tmp_path / "isic2019"
    classes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]

    def one_hot(name: str) -> list[str]:
        return ["1.0" if c == name else "0.0" for c in classes]

    write_csv(
        root / "ISIC_2019_Training_GroundTruth.csv",
        ["image", *classes],
        [
            ["ISIC_0000000", *one_hot("NV")],
            ["ISIC_0000002_downsampled", *one_hot("MEL")],
            ["ISIC_0073247", *one_hot("SCC")],
        ],
    )
    write_csv(
        root / "ISIC_2019_Training_Metadata.csv",
        ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"],
        [
            ["ISIC_0000000", "55.0", "anterior torso", "", "female"],
            ["ISIC_0000002_downsampled", "60.0", "upper extremity", "BCN_0000001", "male"],
            ["ISIC_0073247", "", "", "BCN_0000002", ""],
        ],
    )
    for image_id in ("ISIC_0000000", "ISIC_0000002_downsampled", "ISIC_0073247"):
        write_image(root / "ISIC_2019_Training_Input" / f"{image_id}.jpg")
    return root


def derm7pt_row(case: int, diagnosis: str, derm: str, sex: str = "female") -> list[object]:
    """One meta.csv row with fixed concept values."""
    return [
        case,
        diagnosis,
        1,
        "typical",
        "absent",
        "diffuse regular",
        "blue areas",
        "irregular",
        "absent",
        "within regression",
        "low",
        "flat",
        "lower limbs",
        sex,
        "excision",
        derm.replace("Nel", "Ncl"),
        derm,
    ]


@pytest.fixture
def derm7pt_root(tmp_path: Path) -> Path:
    """derm7pt: 4 cases with the official train/valid/test index files (train gets rows 0 and 2)."""
    root = tmp_path / "derm7pt"
    cases = [
        (1, "basal cell carcinoma", "NEL/Nel026.jpg"),
        (2, "melanoma (in situ)", "NEL/Nel027.jpg"),
        (3, "clark nevus", "NEL/Nel028.jpg"),
        (4, "reed or spitz nevus", "NEL/Nel029.jpg"),
    ]
    write_csv(root / "meta" / "meta.csv", DERM7PT_HEADER, [derm7pt_row(*c) for c in cases])
    write_csv(root / "meta" / "train_indexes.csv", ["indexes"], [[0], [2]])
    write_csv(root / "meta" / "valid_indexes.csv", ["indexes"], [[1]])
    write_csv(root / "meta" / "test_indexes.csv", ["indexes"], [[3]])
    for _, _, derm in cases:
        write_image(root / "images" / derm)
    return root


@pytest.fixture
def fitzpatrick17k_root(tmp_path: Path) -> Path:
    """Fitzpatrick17k: 3 images, one with an unknown (-1) skin type."""
    root = tmp_path / "fitzpatrick17k"
    write_csv(
        root / "fitzpatrick17k.csv",
        [
            "md5hash",
            "fitzpatrick_scale",
            "fitzpatrick_centaur",
            "label",
            "nine_partition_label",
            "three_partition_label",
            "url",
        ],
        [
            ["5e82a45bc5d78bd24ae9202d194423f8", 3, 3, "psoriasis", "inflammatory", "non-neoplastic", "http://a"],
            ["fa2911a9b13b6f8af79cb700937cc14f", 1, 1, "melanoma", "malignant melanoma", "malignant", "http://b"],
            ["d2bac3c9e4499032ca8e9b07c7d3bc40", -1, 2, "acne", "inflammatory", "non-neoplastic", "http://c"],
        ],
    )
    for md5 in (
        "5e82a45bc5d78bd24ae9202d194423f8",
        "fa2911a9b13b6f8af79cb700937cc14f",
        "d2bac3c9e4499032ca8e9b07c7d3bc40",
    ):
        write_image(root / "images" / f"{md5}.jpg")
    return root


@pytest.fixture
def ddi_root(tmp_path: Path) -> Path:
    """DDI: 3 PNG images at the root, one per skin-tone pair."""
    root = tmp_path / "ddi"
    write_csv(
        root / "ddi_metadata.csv",
        ["", "DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"],
        [
            [0, 1, "000001.png", 56, "True", "melanoma-in-situ"],
            [1, 2, "000002.png", 12, "False", "verruca-vulgaris"],
            [2, 3, "000003.png", 34, "False", "seborrheic-keratosis"],
        ],
    )
    for name in ("000001.png", "000002.png", "000003.png"):
        write_image(root / name)
    return root


PAD_HEADER = [
    "patient_id",
    "lesion_id",
    "smoke",
    "age",
    "gender",
    "fitspatrick",
    "region",
    "diameter_1",
    "diagnostic",
    "img_id",
    "biopsed",
]


@pytest.fixture
def pad_root(tmp_path: Path) -> Path:
    """PAD-UFES-20: 3 images of 2 patients in the part folders under images/, one row without metadata."""
    root = tmp_path / "pad_ufes20"
    write_csv(
        root / "metadata.csv",
        PAD_HEADER,
        [
            ["PAT_1516", 1765, "", 8, "", "", "ARM", "", "NEV", "PAT_1516_1765_530.png", "False"],
            ["PAT_46", 881, "False", 55, "FEMALE", "3.0", "NECK", "6.0", "BCC", "PAT_46_881_939.png", "True"],
            ["PAT_46", 882, "False", 55, "FEMALE", "3.0", "FACE", "5.0", "SEK", "PAT_46_882_940.png", "True"],
        ],
    )
    write_image(root / "images" / "imgs_part_1" / "PAT_1516_1765_530.png")
    write_image(root / "images" / "imgs_part_2" / "PAT_46_881_939.png")
    write_image(root / "images" / "imgs_part_2" / "PAT_46_882_940.png")
    return root
