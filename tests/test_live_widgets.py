"""The instructor widgets live in a real JupyterLab: chapter 02's mask explorer moves when its threshold moves.

The other widget tests call the widgets' Python side; this one is what a student does. It starts `jupyter lab`
from the project's environment on a free localhost port (random token, `SKINLIB_DATA` set, the project's
`python3` kernel, this checkout first on `PYTHONPATH`), opens notebook 02 (`notebooks/02_classical_masks.ipynb`,
copied unchanged into a temporary folder so its outputs land there; its default parameters are the quick
ones, about 10 s of computing) in headless Chromium, runs all its cells, waits for the explorer's sliders, then
moves the threshold slider `C` of the adaptive threshold (`MaskExplorer`'s `adaptive_c`: how much darker
than its neighbourhood a pixel must be to count as lesion) with the keyboard, and checks that the figure the
kernel sends back is a new one. Screenshots before and after go to `$SKINLIB_ARTIFACTS/screenshots/jupyterlab`
(default `outputs/screenshots/jupyterlab`).

Needs Debian's `chromium` and `chromium-driver`, `selenium`, JupyterLab with the ipywidgets extension and the
HAM10000 folder: without them it skips, saying why, except in CI (CI set), where it fails.
The Lab and browser helpers are in `tests/jupyterlab_browser.py`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from book_browser import artifacts_dir, browser_missing_reason, chromium_driver, skip_or_fail
from jupyterlab_browser import (
    alive,
    child_pids,
    jupyter_lab,
    kernel_output,
    lab_missing_reason,
    open_notebook,
    run_all_cells,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "02_classical_masks.ipynb"
#: The explorer's threshold control (`MaskExplorer.build_controls`: "adaptive_c", described as "C").
THRESHOLD_LABEL = "C"
#: Key presses on the slider: its step is 0.5, so C goes from its default 3.0 to 5.0.
PRESSES = 4


def require_live_lab():
    """Skip (fail in CI) when the browser or JupyterLab with the widgets extension is missing."""
    skip_or_fail(browser_missing_reason() or lab_missing_reason())


def screenshot_dir() -> Path:
    folder = artifacts_dir("jupyterlab")  # a subfolder: test_browser.py clears *.png in screenshots/ itself
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def lab(tmp_path, data_dir):
    """JupyterLab on a copy of notebook 02 (in tmp_path/notebooks), stopped afterwards, also on failure."""
    require_live_lab()
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, notebooks / NOTEBOOK)
    env = {
        "SKINLIB_DATA": str(data_dir),
        "SKINLIB_STATIC": "0",  # live widgets, whatever the caller's environment says
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "MPLBACKEND": "Agg",
    }
    with jupyter_lab(notebooks, work_dir=tmp_path / "lab", env=env) as server:
        yield server


@pytest.fixture
def driver():
    require_live_lab()
    browser = chromium_driver()
    yield browser
    browser.quit()


# The explorer, found by its threshold slider (the body of a function of the slider's label): the slider's handle, value, and the explorer's figure and text.
_EXPLORER = """
const label = arguments[0];
const slider = Array.from(document.querySelectorAll('.jp-Notebook .widget-slider')).find(
    s => (s.querySelector('.widget-label') || {}).textContent?.trim() === label);
if (!slider) return null;
const root = slider.closest('.jp-OutputArea-output');
const image = root && root.querySelector('.widget-output img');
const texts = root ? Array.from(root.querySelectorAll('.widget-html')).map(e => e.textContent.trim()) : [];
const handle = slider.querySelector('.noUi-handle');
return {
    value: handle && handle.getAttribute('aria-valuenow'),
    readout: (slider.querySelector('.widget-readout') || {}).textContent?.trim(),
    disabled: slider.querySelector('.noUi-target').hasAttribute('disabled'),
    src: image && image.complete && image.naturalWidth > 0 ? image.getAttribute('src') : null,
    text: texts.find(t => t.startsWith('Dice')) || texts.join(' | '),
};
"""


@pytest.mark.data
@pytest.mark.slow
def test_moving_the_threshold_slider_redraws_the_mask_in_jupyterlab(lab, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.perf_counter()
    opened = open_notebook(driver, lab, NOTEBOOK)
    # the project's kernel: the only kernel spec, `python3`, run by this environment's interpreter
    specs = lab.api("kernelspecs")
    assert opened["kernel"] == "python3" and opened["kernel"] in specs["kernelspecs"], (opened, specs)
    assert specs["kernelspecs"]["python3"]["spec"]["argv"][0] in ("python", "python3", sys.executable)
    prefix, skinlib_file = kernel_output(
        driver, "import sys, skinlib; print(sys.prefix); print(skinlib.__file__)"
    ).split()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve(), "the notebook's kernel is not this environment's"
    assert Path(skinlib_file).resolve().is_relative_to(REPO), f"the kernel imports {skinlib_file}, not this checkout's"

    seconds = run_all_cells(driver)
    before = wait_for(
        driver,
        "const s = (function() {" + _EXPLORER + "}).apply(null, arguments); return s && s.src ? s : null;",
        THRESHOLD_LABEL,
        timeout=60,
        what="the mask explorer's figure to render",
    )
    assert not before["disabled"], "the C slider is disabled: the explorer does not start on the adaptive threshold"
    assert float(before["value"]) == 3.0, before  # ClassicalParams().adaptive_c, the notebook's default
    assert before["text"].startswith("Dice vs expert"), before["text"]
    shots = screenshot_dir()
    handle = driver.find_element(
        By.XPATH,
        f"//div[contains(@class, 'widget-slider')][label[normalize-space()='{THRESHOLD_LABEL}']]"
        "//div[contains(@class, 'noUi-handle')]",
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    driver.save_screenshot(str(shots / "02_explorer_before.png"))

    handle.click()
    handle.send_keys(*[Keys.ARROW_RIGHT] * PRESSES)
    # each key press may reach the kernel as its own change: wait until the kernel is idle and the figure
    # is a new one and has stayed the same over two polls (the last change drawn, not one on the way)
    settled = (
        "const s = (function() {" + _EXPLORER + "}).apply(null, arguments);"
        "const app = window.jupyterapp, kernel = app.shell.currentWidget.sessionContext.session.kernel;"
        "return s && s.src && s.src !== arguments[1] && kernel.status === 'idle' ? s : null;"
    )
    after, previous = None, None
    deadline = time.monotonic() + 30
    while after is None:
        state = wait_for(
            driver, settled, THRESHOLD_LABEL, before["src"], timeout=30, what="a new figure from the kernel"
        )
        if previous is not None and state == previous:
            after = state
        elif time.monotonic() > deadline:
            raise TimeoutError(f"the explorer's figure kept changing for 30 s after the slider moved: {state['text']}")
        else:
            previous = state
            time.sleep(0.5)
    driver.save_screenshot(str(shots / "02_explorer_after.png"))
    print(
        f"JupyterLab: notebook 02 ran in {seconds:.1f} s, test {time.perf_counter() - started:.1f} s; "
        f"C {before['value']} -> {after['value']}; {before['text']!r} -> {after['text']!r}"
    )
    assert float(after["value"]) == 3.0 + 0.5 * PRESSES, after
    assert after["readout"] and float(after["readout"]) == float(after["value"])
    assert after["src"] != before["src"]
    assert after["text"].startswith("Dice vs expert"), after["text"]
    # the same image, so a new Dice means the mask itself moved (the default-parameter Dice stays)
    assert after["text"].split(" on ")[-1] == before["text"].split(" on ")[-1]
    assert after["text"] != before["text"], "the figure changed but the Dice against the expert did not"


@pytest.mark.slow
def test_the_lab_server_and_its_kernels_are_stopped_even_when_the_code_using_it_fails(tmp_path):
    if lab_missing_reason():
        pytest.skip(lab_missing_reason())
    (tmp_path / "root").mkdir()
    failing, lab = pytest.raises(RuntimeError, match="boom"), jupyter_lab(tmp_path / "root", work_dir=tmp_path / "lab")
    with failing, lab as server:
        assert server.api("status")["started"]
        assert server.url("lab").endswith(f"/lab?token={server.token}")
        kernel = server.api("kernels", post={"name": "python3"})
        assert [k["id"] for k in server.api("kernels")] == [kernel["id"]]
        kernels = wait_for_children(server.process.pid)
        raise RuntimeError("boom")
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)  # nothing is left of the server's process group
    assert not [pid for pid in kernels if alive(pid)], "a kernel outlived its server"
    with pytest.raises(OSError):
        server.api("status")


def wait_for_children(pid: int, timeout: float = 30) -> list[int]:
    """The child processes of `pid` once it has one (a kernel the server launched)."""
    deadline = time.monotonic() + timeout
    while not (children := child_pids(pid)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} started no child process in {timeout} s")
        time.sleep(0.1)
    return children
