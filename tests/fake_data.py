"""Build tiny HAM10000-shaped folders for bad-input tests (official layout or flat)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization"


def lesion_image(seed: int, size=(60, 80)) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured BGR image with a dark elliptical lesion, and its mask (uint8 0/255)."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = np.full((height, width, 3), (150, 170, 215), np.uint8)
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    centre = (width // 2 + int(rng.integers(-5, 6)), height // 2 + int(rng.integers(-4, 5)))
    cv2.ellipse(mask, centre, (width // 5, height // 5), 0, 0, 360, 255, -1)
    image[mask > 0] = (60, 70, 100)
    return image, mask


def make_ham_folder(root: Path, dx=("nv", "mel", "bkl", "nv"), lesions=None, official: bool = True) -> Path:
    """Write a small data folder; image ids are ISIC_000000<i>. Returns the folder."""
    root.mkdir(parents=True, exist_ok=True)
    lesions = lesions or [f"HAM_{i:07d}" for i in range(len(dx))]
    image_dir = root / "HAM10000_images_part_1" if official else root
    mask_dir = root / "HAM10000_segmentations_lesion_tschandl" if official else root
    image_dir.mkdir(exist_ok=True)
    mask_dir.mkdir(exist_ok=True)
    rows = [HEADER]
    for i, (label, lesion) in enumerate(zip(dx, lesions)):
        image_id = f"ISIC_{i:07d}"
        image, mask = lesion_image(i)
        cv2.imwrite(str(image_dir / f"{image_id}.jpg"), image)
        cv2.imwrite(str(mask_dir / f"{image_id}_segmentation.png"), mask)
        rows.append(f"{lesion},{image_id},{label},histo,50,female,back")
    (root / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    return root
