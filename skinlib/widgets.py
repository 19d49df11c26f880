"""Instructor widgets for the course notebooks, with a static fall-back for papermill, nbval and the book.

Five tools, each a function that builds its widget and shows it:

* `lesion_browser(frame)`: pick a class, step through its images lesion by lesion, see the image with
  the expert mask and the metadata;
* `classical_mask_explorer(frame)`: move the main `ClassicalParams` knobs and watch every step of the
  classical segmentation and its Dice against the expert mask;
* `melanoma_threshold_slider(y_true, mel_scores)`: sensitivity, specificity and the confusion counts of
  "melanoma if score >= threshold" (the scores come from the caller, e.g. a classifier's `probs[:, mel]`);
* `gradcam_explorer(pipeline, images)`: pick an image, a class and a layer; see the lesion crop, its
  Grad-CAM overlay and the probabilities;
* `tta_toggle(pipeline, images)`: test-time augmentation on/off, the single view's probabilities against
  the 8-view average, and what each dihedral view alone predicts.

**Static mode.** A widget needs a live kernel *and* a front-end; papermill, nbval and the rendered book
have neither, so there each function displays a PNG of the tool's default state instead (the book then
shows a real figure, not a dead slider). `static_mode()` decides:

* environment variable ``SKINLIB_STATIC=1`` (also ``true``/``yes``): static. `skinlib pipeline` sets it
  for the kernels it starts; set it yourself for nbval or a plain ``papermill`` run;
* ``SKINLIB_STATIC=0``: live, even where static would be guessed;
* unset: live inside an IPython kernel (Jupyter), static anywhere else (a script, pytest, a console).

In static mode the ipywidgets objects are only built when `.widget` is first used, so executed notebooks
carry no widget state. Either way, `save=PATH` writes the default-state figure as a PNG.

The logic behind each tool is a small pure function in `skinlib.panels` (`lesion_panel`, `mask_panel`, `threshold_counts`,
`threshold_panel`, `params_from_controls`, `gradcam_panel`, `tta_panel`...), testable without a front-end.
Showing a figure (`show_figure`, `image_grid`, `static_mode`) lives in `skinlib.display`, which every notebook uses.
Figures are `matplotlib.figure.Figure` objects (never registered with pyplot) and are displayed as PNG
images, which render the same in Jupyter, in papermill output and in the book.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .data.classes import CLASSES, DISPLAY_NAMES
from .data.images import read_image, read_mask
from .display import _png_output, figure_png, static_mode
from .evaluation.segmentation import dice
from .panels import (
    EXPLORER_FIELDS,
    _known,
    _stage_two,
    browser_rows,
    gradcam_panel,
    lesion_panel,
    lesion_text,
    mask_panel,
    metadata_panel,
    params_from_controls,
    stage2_crops,
    threshold_counts,
    threshold_panel,
    threshold_summary,
    tta_panel,
    tta_view_probabilities,
)
from .segmentation.classical import CHANNELS, ClassicalParams, classical_steps

# ------------------------------------------------------------------------------------- widgets


class InstructorWidget:
    """A tool: controls (built lazily), a pure `render(state) -> (Figure, info)`, an output area.

    `update()` re-renders from the controls (or from `state` before the widget exists) and returns the
    info dict; the controls call it on every change. `show()` displays the widget when live, else a PNG of
    the current state. Attributes: `state` (current values), `figure` and `info` (last render),
    `controls` (name -> ipywidget), `output` (the ipywidgets.Output the figure goes to), `widget`.
    """

    title = ""

    def __init__(self, state: dict, save: str | os.PathLike | None = None):
        self.state = dict(state)
        self.save = Path(save) if save is not None else None
        self.controls: dict = {}
        self.output = None
        self.text = None
        self._widget = None
        self._busy = False
        self.figure, self.info = self.render(self.state)
        self.png = figure_png(self.figure)
        if self.save is not None:
            self.save.parent.mkdir(parents=True, exist_ok=True)
            self.save.write_bytes(self.png)

    # to be provided by each tool
    def render(self, state: dict) -> tuple[Figure, dict]:
        raise NotImplementedError

    def describe(self, info: dict) -> str:
        return ""

    def build_controls(self, widgets) -> dict:
        raise NotImplementedError

    def layout(self, widgets) -> list:
        return [widgets.HBox(list(self.controls.values()))]

    def on_change(self, name: str, change) -> None:
        """Hook for controls that change other controls (e.g. a new class resets the image index)."""

    # shared machinery
    @property
    def widget(self):
        """The ipywidgets container (built on first use)."""
        if self._widget is None:
            try:
                import ipywidgets as widgets
            except ImportError as error:  # pragma: no cover - ipywidgets is a course dependency
                raise ImportError("the instructor widgets need ipywidgets: pip install -e '.[course]'") from error
            self.controls = self.build_controls(widgets)
            self.text = widgets.HTML(html.escape(self.describe(self.info)))
            self.output = widgets.Output()
            self.output.outputs = (_png_output(self.png, self.title),)
            for name, control in self.controls.items():
                if hasattr(control, "value"):
                    control.observe(lambda change, name=name: self._changed(name, change), names="value")
            self._widget = widgets.VBox([*self.layout(widgets), self.text, self.output])
        return self._widget

    def _changed(self, name: str, change) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self.on_change(name, change)
        finally:
            self._busy = False
        self.update()

    def values(self) -> dict:
        """Current values: the controls' when the widget exists, else `state`."""
        if self._widget is None:
            return dict(self.state)
        return {**self.state, **{n: c.value for n, c in self.controls.items() if hasattr(c, "value")}}

    def update(self, change=None) -> dict:
        """Re-render from the current values; refresh the output area and text; return the info dict."""
        self.state = self.values()
        self.figure, self.info = self.render(self.state)
        self.png = figure_png(self.figure)
        if self._widget is not None:
            self.output.outputs = (_png_output(self.png, self.title),)
            self.text.value = html.escape(self.describe(self.info))
        return self.info

    def show(self) -> None:
        """Display the live widget, or (static mode) the current figure as a PNG with its description."""
        from IPython.display import Image, Markdown, display

        if static_mode():
            display(Image(data=self.png, format="png"))
            description = self.describe(self.info)
            if description:
                display(Markdown(description))
        else:
            display(self.widget)

    def _ipython_display_(self) -> None:
        self.show()


class LesionBrowser(InstructorWidget):
    """Step through the images of one class; see `lesion_browser`."""

    title = "lesion browser"

    def __init__(self, frame: pd.DataFrame, dx: str = "mel", index: int = 0, save=None):
        self.frame = frame
        self._rows: dict[str, pd.DataFrame] = {}
        super().__init__({"dx": dx, "index": int(index)}, save)

    def rows(self, dx: str) -> pd.DataFrame:
        if dx not in self._rows:
            self._rows[dx] = browser_rows(self.frame, dx)
        return self._rows[dx]

    def current_row(self, state: dict | None = None) -> pd.Series:
        state = state or self.state
        rows = self.rows(state["dx"])
        if rows.empty:
            raise ValueError(f"no images of class {state['dx']!r} in this frame")
        return rows.iloc[int(np.clip(state["index"], 0, len(rows) - 1))]

    def render(self, state):
        row = self.current_row(state)
        return lesion_panel(row), {
            "image_id": row["image_id"],
            "lesion_id": row["lesion_id"],
            "dx": row["dx"],
            "text": lesion_text(row),
            "count": len(self.rows(state["dx"])),
        }

    def describe(self, info):
        return info["text"]

    def build_controls(self, widgets):
        options = [
            (f"{c}: {DISPLAY_NAMES[c]} ({int((self.frame['dx'] == c).sum())})", c)
            for c in CLASSES
            if (self.frame["dx"] == c).any()
        ]
        count = len(self.rows(self.state["dx"]))
        controls = {
            "dx": widgets.Dropdown(options=options, value=self.state["dx"], description="class"),
            "index": widgets.IntSlider(
                value=self.state["index"], min=0, max=max(0, count - 1), description="image", continuous_update=False
            ),
            "previous": widgets.Button(description="previous", icon="arrow-left"),
            "next": widgets.Button(description="next", icon="arrow-right"),
        }
        controls["previous"].on_click(lambda _: self.step(-1))
        controls["next"].on_click(lambda _: self.step(+1))
        return controls

    def layout(self, widgets):
        c = self.controls
        return [c["dx"], widgets.HBox([c["previous"], c["index"], c["next"]])]

    def on_change(self, name, change):
        if name == "dx":
            slider = self.controls["index"]
            slider.value = 0
            slider.max = max(0, len(self.rows(change["new"])) - 1)

    def step(self, delta: int) -> dict:
        """Next (+1) or previous (-1) image, wrapping around; returns the new info."""
        self.widget  # noqa: B018 - build the controls if needed
        slider = self.controls["index"]
        slider.value = (slider.value + delta) % (slider.max + 1)  # the observer re-renders
        return self.info


class MaskExplorer(InstructorWidget):
    """Classical segmentation with sliders; see `classical_mask_explorer`."""

    title = "classical mask explorer"

    def __init__(self, frame: pd.DataFrame, index: int = 0, params: ClassicalParams = ClassicalParams(), save=None):
        if frame.empty:
            raise ValueError("classical_mask_explorer needs at least one image")
        self.frame = frame.reset_index(drop=True)
        self.base = params
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._default_dice: dict[int, float | None] = {}
        state = {"image": int(index), **{name: getattr(params, name) for name in EXPLORER_FIELDS}}
        super().__init__(state, save)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(image, expert mask or None) of row `index`, read once."""
        if index not in self._pairs:
            row = self.frame.iloc[index]
            mask_path = row.get("mask_path")
            mask = read_mask(mask_path) if _known(mask_path) and Path(mask_path).is_file() else None
            self._pairs[index] = (read_image(row["image_path"]), mask)
        return self._pairs[index]

    def render(self, state):
        index = int(np.clip(state["image"], 0, len(self.frame) - 1))
        image, mask = self.pair(index)
        params = params_from_controls(state, self.base)
        if index not in self._default_dice:
            self._default_dice[index] = _dice_of(image, mask, self.base) if mask is not None else None
        image_id = self.frame.iloc[index].get("image_id", f"image {index}")
        figure, score = mask_panel(image, params, mask, title=f"{image_id}")
        return figure, {
            "image_id": image_id,
            "dice": score,
            "default_dice": self._default_dice[index],
            "params": params,
        }

    def describe(self, info):
        if info["dice"] is None:
            return f"{info['image_id']}: no expert mask to compare with"
        return (
            f"Dice vs expert: {info['dice']:.3f} (default parameters: {info['default_dice']:.3f}) on {info['image_id']}"
        )

    def build_controls(self, widgets):
        s = self.state
        style = {"description_width": "110px"}
        controls = {
            "image": widgets.IntSlider(
                value=s["image"],
                min=0,
                max=len(self.frame) - 1,
                description="image",
                style=style,
                continuous_update=False,
            ),
            "hair_removal": widgets.Checkbox(value=s["hair_removal"], description="remove hair"),
            "hair_kernel": widgets.IntSlider(
                value=s["hair_kernel"],
                min=1,
                max=15,
                step=2,
                description="hair kernel",
                style=style,
                continuous_update=False,
            ),
            "channel": widgets.Dropdown(options=list(CHANNELS), value=s["channel"], description="channel", style=style),
            "method": widgets.ToggleButtons(
                options=["adaptive", "otsu"], value=s["method"], description="threshold", style=style
            ),
            "adaptive_block": widgets.IntSlider(
                value=s["adaptive_block"],
                min=15,
                max=301,
                step=2,
                description="block size",
                style=style,
                continuous_update=False,
            ),
            "adaptive_c": widgets.FloatSlider(
                value=s["adaptive_c"], min=-10, max=20, step=0.5, description="C", style=style, continuous_update=False
            ),
            "otsu_offset": widgets.FloatSlider(
                value=s["otsu_offset"],
                min=-40,
                max=40,
                step=1,
                description="Otsu offset",
                style=style,
                continuous_update=False,
            ),
            "open_kernel": widgets.IntSlider(
                value=s["open_kernel"], min=1, max=15, description="opening", style=style, continuous_update=False
            ),
            "close_kernel": widgets.IntSlider(
                value=s["close_kernel"], min=1, max=25, description="closing", style=style, continuous_update=False
            ),
            "reset": widgets.Button(description="defaults", icon="undo"),
        }
        controls["reset"].on_click(lambda _: self.reset())
        self._enable(controls)
        return controls

    def layout(self, widgets):
        c = self.controls
        return [
            widgets.HBox([c["image"], c["reset"]]),
            widgets.HBox([c["hair_removal"], c["hair_kernel"]]),
            widgets.HBox([c["channel"], c["method"]]),
            widgets.HBox([c["adaptive_block"], c["adaptive_c"]]),
            c["otsu_offset"],
            widgets.HBox([c["open_kernel"], c["close_kernel"]]),
        ]

    @staticmethod
    def _enable(controls) -> None:
        adaptive = controls["method"].value == "adaptive"
        controls["adaptive_block"].disabled = not adaptive
        controls["adaptive_c"].disabled = not adaptive
        controls["otsu_offset"].disabled = adaptive
        controls["hair_kernel"].disabled = not controls["hair_removal"].value

    def on_change(self, name, change):
        self._enable(self.controls)

    def reset(self) -> dict:
        """Every control back to the base parameters (the image stays)."""
        self.widget  # noqa: B018 - build the controls if needed
        self._busy = True
        try:
            for name in EXPLORER_FIELDS:
                self.controls[name].value = getattr(self.base, name)
            self._enable(self.controls)
        finally:
            self._busy = False
        return self.update()


def _dice_of(image, mask, params) -> float:
    return dice(classical_steps(image, params)["mask"], mask)


class ThresholdSlider(InstructorWidget):
    """Melanoma decision threshold; see `melanoma_threshold_slider`."""

    title = "melanoma threshold"

    def __init__(self, y_true, mel_scores, threshold: float = 0.5, save=None):
        self.y_true = np.asarray(y_true)
        self.scores = np.asarray(mel_scores, dtype=np.float64)
        threshold_counts(self.y_true, self.scores, threshold)  # validate early, with a clear message
        super().__init__({"threshold": float(threshold)}, save)

    def render(self, state):
        return threshold_panel(self.y_true, self.scores, state["threshold"])

    def describe(self, info):
        return threshold_summary(info)

    def build_controls(self, widgets):
        low = min(0.0, float(self.scores.min(initial=0.0)))
        high = max(1.0, float(self.scores.max(initial=1.0)))
        return {
            "threshold": widgets.FloatSlider(
                value=self.state["threshold"],
                min=low,
                max=high,
                step=(high - low) / 100,
                readout_format=".2f",
                description="threshold",
                continuous_update=False,
            )
        }


class _CropTool(InstructorWidget):
    """Shared by the stage-2 tools: the crops of `images`, computed once, and an image picker."""

    def _setup(self, pipeline, images, names):
        self.pipeline = pipeline
        self.crops = stage2_crops(pipeline, images)
        self.names = list(names) if names is not None else [f"image {i}" for i in range(len(self.crops))]
        if len(self.names) != len(self.crops):
            raise ValueError(f"{len(self.names)} names for {len(self.crops)} images")

    def _index(self, state) -> int:
        return int(np.clip(state["image"], 0, len(self.crops) - 1))

    def _image_control(self, widgets):
        return widgets.Dropdown(
            options=[(name, i) for i, name in enumerate(self.names)], value=self._index(self.state), description="image"
        )


class GradcamExplorer(_CropTool):
    """Grad-CAM for a chosen image, class and layer; see `gradcam_explorer`."""

    title = "Grad-CAM explorer"

    def __init__(
        self,
        pipeline,
        images,
        names=None,
        index: int = 0,
        class_name: str = "predicted",
        layer: str | None = None,
        save=None,
    ):
        # deferred: loads Keras
        from .explain import _default_layer, candidate_layers

        self._setup(pipeline, images, names)
        model = _stage_two(pipeline).model
        self.layers = candidate_layers(model)
        layer = layer or _default_layer(model)
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} is not one of {', '.join(self.layers)}")
        if class_name != "predicted" and class_name not in CLASSES:
            raise ValueError(f"unknown class {class_name!r}; expected 'predicted' or one of {', '.join(CLASSES)}")
        super().__init__({"image": int(index), "class_name": class_name, "layer": layer}, save)

    def render(self, state):
        index = self._index(state)
        figure, info = gradcam_panel(
            self.pipeline, self.crops[index], state["class_name"], state["layer"], title=self.names[index]
        )
        return figure, {**info, "image": self.names[index]}

    def describe(self, info):
        return (
            f"{info['image']}: Grad-CAM of class {info['class']} at layer {info['layer']} "
            f"(a {info['map_shape'][0]}x{info['map_shape'][1]} map); predicted {info['predicted']} "
            f"with probability {info['probabilities'][info['predicted']]:.2f}"
        )

    def build_controls(self, widgets):
        return {
            "image": self._image_control(widgets),
            "class_name": widgets.Dropdown(
                options=["predicted", *CLASSES], value=self.state["class_name"], description="class"
            ),
            "layer": widgets.Dropdown(options=self.layers, value=self.state["layer"], description="layer"),
        }

    def layout(self, widgets):
        c = self.controls
        return [widgets.HBox([c["image"], c["class_name"]]), c["layer"]]


class TtaToggle(_CropTool):
    """Test-time augmentation on/off for a chosen image; see `tta_toggle`."""

    title = "test-time augmentation"

    def __init__(self, pipeline, images, names=None, index: int = 0, tta: bool = True, save=None):
        self._setup(pipeline, images, names)
        self._views: dict[int, dict] = {}
        super().__init__({"image": int(index), "tta": bool(tta)}, save)

    def views(self, index: int) -> dict:
        """`tta_view_probabilities` of crop `index`, computed once."""
        if index not in self._views:
            self._views[index] = tta_view_probabilities(self.pipeline, self.crops[index])
        return self._views[index]

    def render(self, state):
        index = self._index(state)
        figure, info = tta_panel(
            self.pipeline, self.crops[index], bool(state["tta"]), title=self.names[index], views=self.views(index)
        )
        return figure, {**info, "image": self.names[index]}

    def describe(self, info):
        single = max(info["single"], key=info["single"].get)
        average = max(info["average"], key=info["average"].get)
        agree = sum(top == info["prediction"] for top in info["view_top"])
        return (
            f"{info['image']}: single view says {single} ({info['single'][single]:.2f}), the 8-view average "
            f"says {average} ({info['average'][average]:.2f}); {agree} of 8 views alone agree with "
            f"{info['prediction']} (TTA {'on' if info['tta'] else 'off'})"
        )

    def build_controls(self, widgets):
        return {
            "image": self._image_control(widgets),
            "tta": widgets.ToggleButtons(
                options=[("TTA off", False), ("TTA on (8 views)", True)], value=bool(self.state["tta"]), description=""
            ),
        }


class MetadataExplorer(_CropTool):
    """Age, sex and site against the image's own probabilities; see `metadata_explorer`."""

    title = "metadata explorer"
    UNKNOWN = "unknown"

    def __init__(self, pipeline, images, names=None, index: int = 0, age=None, sex=None, site=None, save=None):
        self._setup(pipeline, images, names)
        prior = _stage_two(pipeline).metadata_prior
        if prior is None:
            raise ValueError("this classifier has no metadata fusion: run `skinlib fit-metadata` first")
        self.sites = sorted(prior.tables.get("site", {}))
        self._image_only: dict[int, np.ndarray] = {}
        sex = str(sex).strip().lower() if sex is not None else self.UNKNOWN
        site = str(site).strip().lower() if site is not None else self.UNKNOWN
        super().__init__(
            {
                "image": int(index),
                "age": age,  # values the controls do not offer start as unknown
                "sex": sex if sex in ("female", "male") else self.UNKNOWN,
                "site": site if site in self.sites else self.UNKNOWN,
            },
            save,
        )

    def image_only(self, index: int) -> np.ndarray:
        if index not in self._image_only:
            self._image_only[index] = _stage_two(self.pipeline).probabilities(self.crops[index][None])[0]
        return self._image_only[index]

    def render(self, state):
        index = self._index(state)
        known = {k: (None if state[k] in (self.UNKNOWN, None) else state[k]) for k in ("age", "sex", "site")}
        figure, info = metadata_panel(
            self.pipeline, self.crops[index], title=self.names[index], image_only=self.image_only(index), **known
        )
        return figure, {**info, "image": self.names[index]}

    def describe(self, info):
        alone = max(info["image_only"], key=info["image_only"].get)
        return (
            f"{info['image']}: the image alone says {alone} ({info['image_only'][alone]:.2f}); with "
            f"{', '.join(f'{k} {v}' for k, v in (info['used'] or {}).items()) or 'no metadata'} the fused answer is "
            f"{info['prediction']} ({info['fused'][info['prediction']]:.2f})"
        )

    def build_controls(self, widgets):
        ages = [(self.UNKNOWN, self.UNKNOWN)] + [(str(a), a) for a in range(0, 90, 5)]
        age = self.state["age"] if self.state["age"] in dict(ages).values() else self.UNKNOWN
        return {
            "image": self._image_control(widgets),
            "age": widgets.Dropdown(options=ages, value=age, description="age"),
            "sex": widgets.Dropdown(
                options=[self.UNKNOWN, "female", "male"], value=self.state["sex"], description="sex"
            ),
            "site": widgets.Dropdown(options=[self.UNKNOWN, *self.sites], value=self.state["site"], description="site"),
        }

    def layout(self, widgets):
        c = self.controls
        return [c["image"], widgets.HBox([c["age"], c["sex"], c["site"]])]


def metadata_explorer(
    pipeline, images, names=None, index: int = 0, age=None, sex=None, site=None, save=None, show: bool = True
) -> MetadataExplorer:
    """Pick an image and set the patient's age, sex and lesion site: the bars compare the image's own
    calibrated probabilities with the metadata-fused ones (`skinlib fit-metadata`). Arguments as for
    `gradcam_explorer`; `age`/`sex`/`site` set the starting state. Returns the `MetadataExplorer`."""
    tool = MetadataExplorer(pipeline, images, names=names, index=index, age=age, sex=sex, site=site, save=save)
    if show:
        tool.show()
    return tool


def lesion_browser(frame: pd.DataFrame, dx: str = "mel", index: int = 0, save=None, show: bool = True) -> LesionBrowser:
    """Browse the images of a class, lesion by lesion, with the expert mask and the metadata.

    `frame` is a metadata frame with `image_path` and `mask_path` (e.g. `load_split_frame()`, or one split
    of it). Displays the tool (live) or a PNG of `dx`/`index` (static mode); returns the `LesionBrowser`.
    """
    tool = LesionBrowser(frame, dx=dx, index=index, save=save)
    if show:
        tool.show()
    return tool


def classical_mask_explorer(
    frame: pd.DataFrame, index: int = 0, params: ClassicalParams = ClassicalParams(), save=None, show: bool = True
) -> MaskExplorer:
    """Sliders for the main `ClassicalParams` fields, every step drawn and the Dice against the expert mask.

    `frame` lists the images to choose from (pass a small sample: each is read when first shown);
    `params` is the starting point and what "defaults" returns to. Returns the `MaskExplorer`.
    """
    tool = MaskExplorer(frame, index=index, params=params, save=save)
    if show:
        tool.show()
    return tool


def melanoma_threshold_slider(
    y_true, mel_scores, threshold: float = 0.5, save=None, show: bool = True
) -> ThresholdSlider:
    """Sensitivity, specificity and confusion counts of "melanoma if score >= threshold".

    `y_true`: 1/True for melanoma; `mel_scores`: the caller's melanoma scores (e.g. `probs[:, mel]`).
    Returns the `ThresholdSlider`.
    """
    tool = ThresholdSlider(y_true, mel_scores, threshold=threshold, save=save)
    if show:
        tool.show()
    return tool


def gradcam_explorer(
    pipeline,
    images,
    names=None,
    index: int = 0,
    class_name: str = "predicted",
    layer: str | None = None,
    save=None,
    show: bool = True,
) -> GradcamExplorer:
    """Pick an image, a class (default: the predicted one) and a layer; see the crop, its Grad-CAM overlay
    and the calibrated probabilities.

    `pipeline`: a `DualStage` (images of any size are segmented and cropped once, up front) or a
    `StageTwo` (images are crops already). `names`: one label per image (e.g. "ISIC_... (mel)").
    The layers offered are `skinlib.explain.candidate_layers` of the classifier. Returns the `GradcamExplorer`.
    """
    tool = GradcamExplorer(pipeline, images, names=names, index=index, class_name=class_name, layer=layer, save=save)
    if show:
        tool.show()
    return tool


def tta_toggle(
    pipeline, images, names=None, index: int = 0, tta: bool = True, save=None, show: bool = True
) -> TtaToggle:
    """Test-time augmentation on/off: the 7 probabilities of the single view vs the average of the 8
    dihedral views, and what each view alone predicts. Arguments as for `gradcam_explorer`.
    Returns the `TtaToggle`.
    """
    tool = TtaToggle(pipeline, images, names=names, index=index, tta=tta, save=save)
    if show:
        tool.show()
    return tool


__all__ = [
    "InstructorWidget",
    "LesionBrowser",
    "MaskExplorer",
    "ThresholdSlider",
    "GradcamExplorer",
    "TtaToggle",
    "MetadataExplorer",
    "lesion_browser",
    "classical_mask_explorer",
    "melanoma_threshold_slider",
    "gradcam_explorer",
    "tta_toggle",
    "metadata_explorer",
]
