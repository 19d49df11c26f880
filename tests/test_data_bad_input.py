"""Bad input gets a clear error naming the file, or is handled as documented; nothing is dropped silently."""

import shutil

import cv2
import numpy as np
import pytest
from fake_data import make_ham_folder

from skinlib.cli import main
from skinlib.data import (
    DataError,
    DataWarning,
    class_weights,
    fit_size,
    load_metadata,
    read_image,
    read_mask,
    resolve_data_dir,
)
from skinlib.data.check import check_data


@pytest.fixture
def folder(tmp_path):
    return make_ham_folder(tmp_path / "ham")


def test_good_fake_folder_passes(folder):
    frame = load_metadata(folder)
    assert len(frame) == 4 and frame["mask_path"].notna().all()
    assert check_data(folder, progress=False).ok


def test_missing_folder_is_one_sentence(tmp_path, capsys):
    assert main(["check-data", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "SKINLIB_DATA" in err and "Traceback" not in err


def test_no_folder_configured(monkeypatch):
    monkeypatch.delenv("SKINLIB_DATA", raising=False)
    with pytest.raises(DataError, match="No data folder given"):
        resolve_data_dir(None)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no HAM10000 metadata"):
        load_metadata(tmp_path)


def test_missing_metadata_file(folder):
    (folder / "HAM10000_metadata.csv").unlink()
    with pytest.raises(DataError, match="no metadata CSV"):
        load_metadata(folder)


def test_metadata_without_required_column(folder):
    (folder / "HAM10000_metadata.csv").write_text("lesion_id,image_id\nHAM_1,ISIC_0000000\n")
    with pytest.raises(DataError, match="missing column.*dx"):
        load_metadata(folder)


def test_row_whose_image_is_missing(folder):
    (folder / "HAM10000_images_part_1" / "ISIC_0000002.jpg").unlink()
    with pytest.raises(DataError, match="ISIC_0000002"):
        load_metadata(folder)
    with pytest.warns(DataWarning, match="skipped 1 metadata row.*ISIC_0000002"):
        frame = load_metadata(folder, missing="skip")
    assert len(frame) == 3 and frame.attrs["missing_images"] == ["ISIC_0000002"]


def test_unknown_dx_label(folder):
    path = folder / "HAM10000_metadata.csv"
    path.write_text(path.read_text().replace(",mel,", ",melanoma,"))
    with pytest.raises(DataError, match=r"unknown dx label.*row 3 \(ISIC_0000001: 'melanoma'\)"):
        load_metadata(folder)


def test_duplicate_image_id(folder):
    path = folder / "HAM10000_metadata.csv"
    path.write_text(path.read_text() + "HAM_9,ISIC_0000001,mel,histo,50,male,back\n")
    with pytest.raises(DataError, match="appear more than once: ISIC_0000001"):
        load_metadata(folder)


def test_same_image_in_two_folders(folder):
    part2 = folder / "HAM10000_images_part_2"
    part2.mkdir()
    shutil.copy(folder / "HAM10000_images_part_1" / "ISIC_0000001.jpg", part2)
    with pytest.raises(DataError, match="more than one file"):
        load_metadata(folder)


def test_corrupt_and_truncated_jpeg(folder):
    images = folder / "HAM10000_images_part_1"
    (images / "ISIC_0000000.jpg").write_bytes(b"this is not a jpeg at all")
    good = (images / "ISIC_0000001.jpg").read_bytes()
    (images / "ISIC_0000001.jpg").write_bytes(good[: len(good) // 2])
    for name in ("ISIC_0000000", "ISIC_0000001"):
        with pytest.raises(DataError, match=name):
            read_image(images / f"{name}.jpg")
    with pytest.raises(DataError, match="truncated"):
        read_image(images / "ISIC_0000001.jpg")


def test_check_data_names_corrupt_and_missing_files(folder, capsys):
    images = folder / "HAM10000_images_part_1"
    (images / "ISIC_0000000.jpg").write_bytes(b"\xff\xd8 truncated")
    (images / "ISIC_0000003.jpg").unlink()
    report = check_data(folder, progress=False)
    assert not report.ok and report.missing_images == ["ISIC_0000003"]
    assert list(report.unreadable) == [str(images / "ISIC_0000000.jpg")]
    assert main(["check-data", "--data", str(folder), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "ISIC_0000000.jpg" in out and "ISIC_0000003" in out and "FAILED: 2 problem(s)" in out


def test_grayscale_rgba_and_16bit_png_become_rgb(tmp_path):
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (5, 1))
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    bgra = np.zeros((5, 25, 4), np.uint8)
    bgra[..., 2], bgra[..., 3] = 200, 255  # opaque red
    bgra[0, :, 3] = 0  # a transparent row composites to black
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    cv2.imwrite(str(tmp_path / "deep.png"), (gray.astype(np.uint16) * 257))
    for name in ("gray", "deep"):
        image = read_image(tmp_path / f"{name}.png")
        assert image.shape == (5, 25, 3) and image.dtype == np.uint8
        assert np.array_equal(image[..., 0], gray) and np.array_equal(image[..., 1], gray)
    rgba = read_image(tmp_path / "rgba.png")
    assert rgba.shape == (5, 25, 3)
    assert rgba[1, 0].tolist() == [200, 0, 0] and rgba[0, 0].tolist() == [0, 0, 0]


def test_empty_and_non_image_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(DataError, match="empty"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(DataError, match="notes.png"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "absent.jpg")


def test_strict_mask_rejects_grey_values(tmp_path):
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 2:5] = 255
    mask[6, 6] = 128
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    assert read_mask(tmp_path / "m.png").sum() == 10
    with pytest.raises(DataError, match="only 0 and 255"):
        read_mask(tmp_path / "m.png", strict=True)


def test_flat_folder_layout(tmp_path):
    folder = make_ham_folder(tmp_path / "flat", official=False)
    frame = load_metadata(folder)
    assert len(frame) == 4 and frame["mask_path"].notna().all()
    assert check_data(folder, progress=False).ok


def test_missing_lesion_id_column_warns(folder):
    path = folder / "HAM10000_metadata.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(",".join(line.split(",")[1:]) for line in lines) + "\n")
    with pytest.warns(DataWarning, match="own lesion"):
        frame = load_metadata(folder)
    assert (frame["lesion_id"] == frame["image_id"]).all()


@pytest.mark.parametrize("fit", ["pad", "crop", "stretch"])
def test_fit_size_any_input_shape(fit):
    for shape in ((8, 8, 3), (450, 600, 3), (1000, 700, 3)):
        image = np.full(shape, 128, np.uint8)
        assert fit_size(image, (96, 128), fit).shape == (96, 128, 3)
        mask = fit_size(np.ones(shape[:2], bool), (96, 128), fit)
        assert mask.dtype == bool and mask.shape == (96, 128)


def test_fit_pad_keeps_aspect_ratio():
    portrait = np.full((200, 100, 3), 255, np.uint8)
    out = fit_size(portrait, (100, 100), "pad")
    assert out[:, :25].max() == 0 and out[:, 25:75].min() == 255


def test_class_weights_absent_class_gets_zero():
    weights, counts = class_weights([0, 0, 1, 1, 1, 1], num_classes=3)
    assert counts.tolist() == [2, 4, 0]
    assert weights == {0: pytest.approx(1.5), 1: pytest.approx(0.75), 2: 0.0}
