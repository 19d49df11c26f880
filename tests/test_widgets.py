"""Instructor widgets: the pure panels, the widgets built and driven without a front-end, static mode."""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from skinlib import display as D
from skinlib import panels as P
from skinlib import widgets as W
from skinlib.data import CLASSES
from skinlib.runtime.views import Views
from skinlib.segmentation import ClassicalParams

PNG = b"\x89PNG\r\n\x1a\n"


def lesion_image(shape=(150, 200), centre=(100, 75), axes=(45, 30), dark=60):
    """A skin-coloured image with a dark ellipse, and the ellipse as the expert mask."""
    image = np.full((*shape, 3), (220, 170, 150), np.uint8)
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
    image[mask > 0] = (dark + 40, dark, dark)
    return image, mask > 0


@pytest.fixture
def synthetic_frame(tmp_path):
    """Five images in two classes (one mel lesion photographed twice), files on disk like HAM10000."""
    rows = [
        ("HAM_1", "ISIC_1", "mel"),
        ("HAM_1", "ISIC_2", "mel"),
        ("HAM_2", "ISIC_3", "mel"),
        ("HAM_3", "ISIC_4", "nv"),
        ("HAM_4", "ISIC_5", "nv"),
    ]
    records = []
    for number, (lesion, image_id, dx) in enumerate(rows):
        image, mask = lesion_image(centre=(90 + 5 * number, 70), axes=(40 + 3 * number, 28))
        image_path, mask_path = tmp_path / f"{image_id}.jpg", tmp_path / f"{image_id}_segmentation.png"
        cv2.imwrite(str(image_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 255)
        records.append(
            {
                "lesion_id": lesion,
                "image_id": image_id,
                "dx": dx,
                "dx_type": "histo",
                "age": 50.0 + number,
                "sex": "female",
                "localization": "back",
                "label": CLASSES.index(dx),
                "image_path": str(image_path),
                "mask_path": str(mask_path),
                "split": "val",
            }
        )
    return pd.DataFrame(records)


@pytest.fixture
def static(monkeypatch):
    monkeypatch.setenv(D.STATIC_ENV, "1")


@pytest.fixture
def shown(monkeypatch):
    """Record what the tools pass to IPython's display()."""
    import IPython.display

    items = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects, **_: items.extend(objects))
    return items


# ------------------------------------------------------------------------------------ static mode


@pytest.mark.parametrize(
    "value, expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("false", False)]
)
def test_static_mode_follows_the_environment_variable(monkeypatch, value, expected):
    monkeypatch.setenv(D.STATIC_ENV, value)
    assert D.static_mode() is expected


def test_static_mode_outside_a_kernel(monkeypatch):
    monkeypatch.delenv(D.STATIC_ENV, raising=False)
    assert D.static_mode() is True  # pytest is no IPython kernel


def test_show_figure_displays_a_png_and_saves_it(tmp_path, shown):
    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    assert D.show_figure(figure, save=tmp_path / "sub" / "plot.png") is None
    assert (tmp_path / "sub" / "plot.png").read_bytes().startswith(PNG)
    assert len(shown) == 1 and shown[0].data.startswith(PNG)


# ------------------------------------------------------------------------------------ pure panels


def test_mask_panel_draws_every_step_and_scores_the_mask():
    image, truth = lesion_image()
    figure, score = P.mask_panel(image, ClassicalParams(), truth)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == len(P.EXPLORER_STEPS)
    assert score > 0.9  # a dark ellipse on skin is the easy case
    figure, score = P.mask_panel(image, ClassicalParams(), None, steps=("image", "threshold", "mask"))
    assert score is None and len(figure.axes) == 3
    assert D.figure_png(figure).startswith(PNG)


def test_mask_panel_dice_moves_with_the_parameters():
    image, truth = lesion_image()
    _, good = P.mask_panel(image, ClassicalParams(), truth)
    too_strict = P.params_from_controls({"method": "otsu", "otsu_offset": -120})  # nothing is dark enough
    _, empty = P.mask_panel(image, too_strict, truth)
    assert good > 0.9 and empty == 0.0


def test_steps_figure_is_a_grid_of_images_by_steps():
    pairs = [lesion_image(), lesion_image(centre=(110, 80))]
    figure = P.steps_figure([p[0] for p in pairs], ClassicalParams(), [p[1] for p in pairs], row_titles=["a", "b"])
    assert len(figure.axes) == 2 * len(P.FIGURE_STEPS)
    with pytest.raises(ValueError, match="at least one image"):
        P.steps_figure([])


def test_params_from_controls_replaces_only_parameter_fields():
    params = P.params_from_controls({"channel": "gray", "adaptive_c": 1.5, "image": 3}, ClassicalParams(open_kernel=3))
    assert (params.channel, params.adaptive_c, params.open_kernel) == ("gray", 1.5, 3)
    assert params.method == ClassicalParams().method
    with pytest.raises(ValueError, match="channel"):
        P.params_from_controls({"channel": "purple"})


def test_threshold_counts_by_hand():
    y_true = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.5, 0.2, 0.6, 0.3, 0.1, 0.5]
    counts = P.threshold_counts(y_true, scores, 0.5)  # >= 0.5 is melanoma: 0.9, 0.5 | 0.6, 0.5
    assert (counts["tp"], counts["fn"], counts["fp"], counts["tn"]) == (2, 1, 2, 2)
    assert counts["sensitivity"] == pytest.approx(2 / 3)
    assert counts["specificity"] == pytest.approx(0.5)
    assert counts["ppv"] == pytest.approx(0.5)
    assert counts["flagged"] == 4 and counts["n"] == 7
    assert P.threshold_counts(y_true, scores, 0.0)["sensitivity"] == 1.0
    assert P.threshold_counts(y_true, scores, 1.01)["specificity"] == 1.0


def test_threshold_counts_undefined_ratios_are_nan_and_bad_input_is_refused():
    counts = P.threshold_counts([0, 0], [0.2, 0.8], 0.5)
    assert math.isnan(counts["sensitivity"]) and counts["specificity"] == 0.5
    assert "n/a" in P.threshold_summary(counts)
    with pytest.raises(ValueError, match="0/1"):
        P.threshold_counts([0, 4], [0.2, 0.8], 0.5)
    with pytest.raises(ValueError, match="one length"):
        P.threshold_counts([0, 1], [0.2], 0.5)
    with pytest.raises(ValueError, match="finite"):
        P.threshold_counts([0, 1], [0.2, np.nan], 0.5)


def test_threshold_panel_returns_the_figure_and_the_counts():
    figure, counts = P.threshold_panel(np.array([True, False, True]), np.array([0.8, 0.4, 0.3]), 0.35)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert (counts["tp"], counts["fn"], counts["fp"], counts["tn"]) == (1, 1, 1, 0)


def test_browser_rows_group_the_images_of_a_lesion(synthetic_frame):
    rows = P.browser_rows(synthetic_frame, "mel")
    assert list(rows["image_id"]) == ["ISIC_1", "ISIC_2", "ISIC_3"]
    assert list(rows["lesion_images"]) == [2, 2, 1] and list(rows["lesion_position"]) == [1, 2, 1]
    text = P.lesion_text(rows.iloc[1])
    for part in ("ISIC_2", "Melanoma", "lesion HAM_1 (image 2 of 2)", "histo", "age 51", "female", "back", "val split"):
        assert part in text
    assert P.browser_rows(synthetic_frame, "df").empty
    with pytest.raises(ValueError, match="unknown class"):
        P.browser_rows(synthetic_frame, "melanoma")


def test_lesion_panel_shows_image_and_expert_mask(synthetic_frame):
    figure = P.lesion_panel(P.browser_rows(synthetic_frame, "nv").iloc[0])
    assert len(figure.axes) == 2 and "ISIC_4" in figure._suptitle.get_text()


# ------------------------------------------------------------------------------------ the widgets


def test_lesion_browser_widget_steps_and_switches_class(synthetic_frame, static, shown, tmp_path):
    browser = W.lesion_browser(synthetic_frame, dx="mel", save=tmp_path / "browser.png")
    assert (tmp_path / "browser.png").read_bytes().startswith(PNG)
    assert shown[0].data.startswith(PNG)  # static: the default state as a picture...
    assert "ISIC_1" in shown[1].data  # ...and its metadata line
    assert browser._widget is None  # no ipywidgets built for papermill/the book

    import ipywidgets

    box = browser.widget
    assert isinstance(box, ipywidgets.VBox)
    assert isinstance(box.children[-1], ipywidgets.Output) and isinstance(box.children[-2], ipywidgets.HTML)
    dx, index = browser.controls["dx"], browser.controls["index"]
    assert dx.value == "mel" and [value for _, value in dx.options] == ["mel", "nv"]
    assert (index.value, index.max) == (0, 2)
    browser.step(+1)
    assert browser.info["image_id"] == "ISIC_2" and "image 2 of 2" in browser.text.value
    browser.step(-2)  # wraps around
    assert index.value == 2 and browser.info["image_id"] == "ISIC_3"
    dx.value = "nv"  # a new class starts at its first image
    assert (index.value, index.max) == (0, 1) and browser.info["image_id"] == "ISIC_4"
    output = browser.output.outputs[0]
    assert output["output_type"] == "display_data" and "image/png" in output["data"]


def test_mask_explorer_widget_recomputes_dice(synthetic_frame, static, shown):
    explorer = W.classical_mask_explorer(synthetic_frame, show=False)
    assert not shown
    first = explorer.info["dice"]
    assert first == pytest.approx(explorer.info["default_dice"]) and first > 0.8
    _ = explorer.widget  # build it
    assert set(P.EXPLORER_FIELDS) <= set(explorer.controls)
    assert explorer.controls["channel"].value == ClassicalParams().channel
    assert explorer.controls["otsu_offset"].disabled  # the default method is adaptive
    explorer.controls["method"].value = "otsu"
    assert explorer.info["params"].method == "otsu"
    assert not explorer.controls["otsu_offset"].disabled and explorer.controls["adaptive_c"].disabled
    explorer.controls["open_kernel"].value = 15
    explorer.controls["close_kernel"].value = 1
    explorer.controls["hair_removal"].value = False
    assert explorer.controls["hair_kernel"].disabled
    params = explorer.info["params"]
    assert (params.open_kernel, params.close_kernel, params.hair_removal) == (15, 1, False)
    image, truth = explorer.pair(0)
    assert explorer.info["dice"] == pytest.approx(P.mask_panel(image, params, truth)[1])
    assert f"{explorer.info['dice']:.3f}" in explorer.text.value
    explorer.controls["image"].value = 3
    assert explorer.info["image_id"] == "ISIC_4"
    info = explorer.reset()
    assert info["params"] == ClassicalParams() and explorer.controls["method"].value == "adaptive"
    assert explorer.info["image_id"] == "ISIC_4"  # reset keeps the image


def test_mask_explorer_update_before_the_widget_exists(synthetic_frame):
    explorer = W.MaskExplorer(synthetic_frame)
    explorer.state["channel"] = "gray"
    assert explorer.update()["params"].channel == "gray"
    with pytest.raises(ValueError, match="at least one image"):
        W.MaskExplorer(synthetic_frame.iloc[:0])


def test_threshold_slider_widget(static, shown):
    rng = np.random.default_rng(0)
    y_true = rng.random(300) < 0.1
    scores = np.clip(rng.normal(0.3 + 0.4 * y_true, 0.15), 0, 1)
    slider = W.melanoma_threshold_slider(y_true, scores, threshold=0.5)
    assert shown[0].data.startswith(PNG) and "threshold 0.50" in shown[1].data
    control = slider.widget.children[0].children[0]
    assert control is slider.controls["threshold"] and control.value == 0.5
    control.value = 0.1
    assert slider.info == P.threshold_counts(y_true, scores, 0.1)
    assert slider.info["sensitivity"] == 1.0 and "threshold 0.10" in slider.text.value
    assert slider.update()["threshold"] == 0.1
    with pytest.raises(ValueError, match="0/1"):
        W.melanoma_threshold_slider([2, 3], [0.1, 0.2], show=False)


def test_live_mode_displays_the_widget(monkeypatch, shown):
    import ipywidgets

    monkeypatch.setenv(D.STATIC_ENV, "0")
    slider = W.melanoma_threshold_slider([0, 1, 1], [0.2, 0.7, 0.4])
    assert shown == [slider.widget] and isinstance(shown[0], ipywidgets.VBox)


# ------------------------------------------------------------------------------------ real data


@pytest.mark.data
def test_widgets_on_real_images(data_dir, split_frame, static, shown):
    from skinlib.data import read_image, read_mask
    from skinlib.evaluation import dice
    from skinlib.segmentation import segment_classical

    val = split_frame[split_frame["split"] == "val"].sort_values("image_id").head(2)
    explorer = W.classical_mask_explorer(val, show=False)
    row = val.iloc[0]
    expected = dice(segment_classical(read_image(row["image_path"])), read_mask(row["mask_path"]))
    assert explorer.info["dice"] == pytest.approx(expected)
    browser = W.lesion_browser(split_frame, dx="df", show=False)
    assert browser.info["count"] == int((split_frame["dx"] == "df").sum())


# ------------------------------------------------------------------------ Grad-CAM and TTA tools


@pytest.fixture(scope="module")
def stage_two():
    """A small untrained classifier (64 px inputs) wrapped as a StageTwo, with distinct temperatures."""
    from skinlib.models.classifier import build_classifier
    from skinlib.models.folder import ClassifierSpec
    from skinlib.runtime import StageTwo

    model = build_classifier(input_shape=(64, 64, 3), backbone_weights=None)
    return StageTwo(
        model=model,
        spec=ClassifierSpec(backbone="lite0", attention=True, image_size=64, temperature=1.5, temperature_tta=1.2),
    )


@pytest.fixture(scope="module")
def crops():
    return [cv2.resize(lesion_image(centre=(100 + 10 * i, 75))[0], (64, 64)) for i in range(2)]


def test_stage2_crops_fit_images_to_the_classifier_input(stage_two, crops):
    out = P.stage2_crops(stage_two, [crops[0], lesion_image()[0]])
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="at least one"):
        P.stage2_crops(stage_two, [])


def test_gradcam_panel_explains_the_chosen_class_at_the_chosen_layer(stage_two, crops):
    from skinlib.explain import candidate_layers

    figure, info = P.gradcam_panel(stage_two, crops[0])
    assert isinstance(figure, Figure) and len(figure.axes) == 3
    probs = stage_two.probabilities(crops[0][None])[0]
    assert info["predicted"] == info["class"] == CLASSES[int(np.argmax(probs))]
    assert info["layer"] == "top_activation" and sum(info["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    early = candidate_layers(stage_two.model)[0]
    _, other = P.gradcam_panel(stage_two, crops[0], "df", early)
    assert other["class"] == "df" and other["layer"] == early
    assert other["map_shape"][0] > info["map_shape"][0]  # earlier layers are finer
    assert P.gradcam_panel(stage_two, crops[0], CLASSES.index("vasc"))[1]["class"] == "vasc"
    with pytest.raises(ValueError, match="unknown class"):
        P.gradcam_panel(stage_two, crops[0], "melanoma")


def test_tta_view_probabilities_match_the_classifier(stage_two, crops):
    views = P.tta_view_probabilities(stage_two, crops[0])
    assert views["views"].shape == (8, 64, 64, 3) and views["view_probs"].shape == (8, len(CLASSES))
    np.testing.assert_array_equal(views["views"][0], crops[0])
    np.testing.assert_allclose(views["single"], stage_two.probabilities(crops[0][None], Views.single())[0], atol=1e-5)
    np.testing.assert_allclose(
        views["average"], stage_two.probabilities(crops[0][None], Views.dihedral())[0], atol=1e-5
    )
    np.testing.assert_allclose(views["view_probs"].sum(axis=1), 1, atol=1e-5)


def test_stage2_tools_average_an_ensembles_members(stage_two, crops):
    """With two members the TTA views and the Grad-CAM panel speak for the ensemble, not its first member."""
    from skinlib.models.classifier import build_classifier
    from skinlib.runtime import StageTwo

    keras.utils.set_random_seed(1)
    second = build_classifier(input_shape=(64, 64, 3), backbone_weights=None)
    second.layers[-1].bias.assign(np.linspace(-2, 2, len(CLASSES)).astype("float32"))  # a member that disagrees
    ensemble = StageTwo(model=stage_two.model, spec=stage_two.spec, members=[stage_two.model, second])
    views = P.tta_view_probabilities(ensemble, crops[0])
    np.testing.assert_allclose(views["single"], ensemble.probabilities(crops[0][None])[0], atol=1e-5)
    np.testing.assert_allclose(views["average"], ensemble.probabilities(crops[0][None], Views.dihedral())[0], atol=1e-5)
    assert not np.allclose(views["single"], stage_two.probabilities(crops[0][None])[0], atol=1e-3)
    _, info = P.gradcam_panel(ensemble, crops[0])
    assert info["predicted"] == CLASSES[int(np.argmax(ensemble.probabilities(crops[0][None])[0]))]


def test_tta_panel_on_and_off(stage_two, crops):
    views = P.tta_view_probabilities(stage_two, crops[0])
    _, on = P.tta_panel(stage_two, crops[0], tta=True, views=views)
    _, off = P.tta_panel(stage_two, crops[0], tta=False, views=views)
    assert on["tta"] and not off["tta"]
    assert on["prediction"] == max(on["average"], key=on["average"].get)
    assert off["prediction"] == max(off["single"], key=off["single"].get)
    assert len(on["view_top"]) == len(on["view_confidence"]) == 8
    assert on["view_confidence"][0] == pytest.approx(max(off["single"].values()))
    assert 0 <= on["spread"] <= 1


def test_gradcam_explorer_widget(stage_two, crops, static, shown, tmp_path):
    from skinlib.explain import candidate_layers

    tool = W.gradcam_explorer(stage_two, crops, names=["a", "b"], save=tmp_path / "gradcam.png")
    assert (tmp_path / "gradcam.png").read_bytes().startswith(PNG)
    assert shown and shown[0].data.startswith(PNG) and "Grad-CAM" in shown[1].data
    assert tool.info["image"] == "a" and tool.info["layer"] == "top_activation"
    tool.widget  # noqa: B018 - build the controls
    assert list(tool.controls["layer"].options) == candidate_layers(stage_two.model)
    tool.controls["image"].value = 1
    tool.controls["class_name"].value = "bcc"
    assert tool.info["image"] == "b" and tool.info["class"] == "bcc"
    tool.controls["layer"].value = candidate_layers(stage_two.model)[1]
    assert tool.info["layer"] == candidate_layers(stage_two.model)[1]
    assert tool.output.outputs[0]["data"]["image/png"]
    with pytest.raises(ValueError, match="layer"):
        W.GradcamExplorer(stage_two, crops, layer="dense")
    with pytest.raises(ValueError, match="names"):
        W.GradcamExplorer(stage_two, crops, names=["only one"])


def test_tta_toggle_widget(stage_two, crops, static, shown):
    tool = W.tta_toggle(stage_two, crops)
    assert tool.info["tta"] is True and "8 views" in shown[1].data
    tool.widget  # noqa: B018 - build the controls
    tool.controls["tta"].value = False
    assert tool.info["tta"] is False
    assert tool.info["prediction"] == max(tool.info["single"], key=tool.info["single"].get)
    tool.controls["image"].value = 1
    assert tool.info["image"] == "image 1" and set(tool._views) == {0, 1}


def test_metadata_explorer_widget(stage_two, crops, static, shown):
    """The fused bars move with the controls exactly as the prior says; an unknown field changes nothing."""
    import dataclasses

    import pandas as pd

    from skinlib.models.folder import MetadataFusionSpec
    from skinlib.models.metadata_prior import MetadataPrior

    frame = pd.DataFrame(
        {
            "lesion_id": [f"L{i}" for i in range(14)],
            "label": list(range(7)) * 2,
            "age": [30] * 7 + [80] * 7,
            "sex": ["male"] * 14,
            "localization": ["face", "back"] * 7,
        }
    )
    frame.loc[frame["label"] == 1, "localization"] = "face"  # bcc: only on the face
    fused_model = dataclasses.replace(
        stage_two,
        metadata_prior=MetadataPrior.fit(frame),
        spec=dataclasses.replace(stage_two.spec, metadata_fusion=MetadataFusionSpec(weight=1.0, weight_tta=1.0)),
    )
    tool = W.metadata_explorer(fused_model, crops)
    assert tool.info["used"] is None and tool.info["fused"] == pytest.approx(tool.info["image_only"])
    assert "no metadata" in shown[1].data
    tool.widget  # noqa: B018 - build the controls
    tool.controls["site"].value = "face"
    assert tool.info["used"] == {"site": "face"}
    assert tool.info["fused"]["bcc"] > tool.info["image_only"]["bcc"]
    tool.controls["image"].value = 1
    assert tool.info["image"] == "image 1" and set(tool._image_only) == {0, 1}
    with pytest.raises(ValueError, match="fit-metadata"):
        W.MetadataExplorer(stage_two, crops)


@pytest.mark.slow
def test_stage2_tools_on_the_shipped_pipeline(static, shown):
    from skinlib.runtime import DualStage

    pipeline = DualStage.load()
    image = lesion_image(shape=(300, 400), centre=(200, 150), axes=(90, 60))[0]
    explorer = W.gradcam_explorer(pipeline, [image], show=False)
    assert explorer.crops.shape[1:] == (pipeline.classifier.image_size,) * 2 + (3,)
    toggle = W.tta_toggle(pipeline, [image], show=False)
    assert toggle.info["prediction"] in CLASSES
    if pipeline.classifier.metadata_prior is not None:
        metadata = W.metadata_explorer(pipeline, [image], age=75, site="face", show=False)
        assert metadata.info["used"] == {"age": "70s", "site": "face"}
