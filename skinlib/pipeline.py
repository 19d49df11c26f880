"""The course runner: execute the notebooks in order with papermill (`skinlib pipeline`).

    run_pipeline("quick")                      # every notebook, small samples, into outputs/quick/
    run_pipeline("full", out_dir="outputs/full", notebooks=["01", "02"])

Each notebook in `NOTEBOOKS` (files in `notebooks/`, run in that order) gets its papermill `parameters`
cell overridden with `mode`, `data_dir`, `out_dir` and the sizes of `MODES[mode]` (only the names that
notebook declares). The executed notebook is written to `<out_dir>/notebooks/`; the notebooks themselves
write their figures and JSON into `<out_dir>`. `<out_dir>/timings.json` records, after every notebook,
how long each took and whether it succeeded.

A failing cell stops the run with `NotebookFailed`, which names the notebook, the cell (its index in the
executed notebook, whose papermill-injected parameters cell counts) and the error; the partly executed
notebook, with the traceback in the failing cell, and everything written before stay on disk.

**Which kernel runs the notebooks.** Papermill takes the kernel name from its `kernel_name` argument,
else from the notebook's `metadata.kernelspec.name` ("python3" here), and jupyter_client looks that name
up in the Jupyter data paths ($JUPYTER_PATH, then this environment's and the user's share/jupyter/kernels,
then system-wide), falling back to ipykernel's built-in spec. Which interpreter that launches therefore
depends on what is installed where. The pipeline does not leave it to chance: it passes
`kernel_manager_class=CurrentPythonKernelManager`, whose spec for "python3" is ipykernel's own spec for
*this* interpreter (`[sys.executable, "-m", "ipykernel_launcher", ...]`, the same trick as nbval's
`--nbval-current-env`), with `SKINLIB_STATIC=1` added to the kernel's environment so the instructor
widgets render static figures (`skinlib.display.static_mode`). The notebooks thus always run in the
environment that runs the pipeline, with the skinlib it imports.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .data import resolve_data_dir
from .display import STATIC_ENV

#: The repository root (the notebooks are not part of the installed package: run from a checkout).
REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"

TOC = REPO / "_toc.yml"


def toc_notebooks(toc: Path = TOC) -> tuple[str, ...]:
    """The course notebooks in book order, as `_toc.yml` lists them (`- file: notebooks/NN_name`): the book's
    table of contents is the one list of chapters, and the pipeline runs them in that order."""
    import re

    names = re.findall(r"^\s*-\s*file:\s*notebooks/(\S+?)(?:\.ipynb)?\s*$", toc.read_text(), flags=re.M)
    if not names:
        raise ValueError(f"{toc} lists no notebooks/ chapter")
    return tuple(f"{name}.ipynb" for name in names)


#: The course notebooks, in the order they run (file names in `NOTEBOOK_DIR`), from `_toc.yml`.
NOTEBOOKS: tuple[str, ...] = toc_notebooks() if TOC.is_file() else ()  # an installed wheel has no course

#: Per-mode values injected into every notebook that declares them in its parameters cell.
#: quick: minutes on a laptop (small samples); full: the numbers the book reports (whole splits).
MODES: dict[str, dict] = {
    "quick": {
        "n_gallery": 1,  # 01: images per class in the gallery
        "n_step_images": 3,  # 02: train images whose every step is drawn
        "n_val": 60,  # 02: validation images scored (None: the whole split)
        "n_worst": 4,  # 02, 03: worst cases shown
        "n_explorer": 4,  # 02: images in the slider explorer
        "n_test_masks": 60,  # 03: test images scored by the U-Net and the classical method (None: all)
        "n_compare": 4,  # 03: test images in the U-Net / classical / expert comparison
        "n_train_demo": 700,  # 04, 05: training images of the live demo runs (stratified sample)
        "n_val_demo": 300,  # 04, 05: validation images of the live demo runs
        "demo_views": 2,  # 04, 05: augmented views cached per training image in the demo runs
        "retrain": False,  # 03, 04: retrain the shipped U-Net / classifier with their recorded recipes
        "n_tta": 100,  # 06: test images (stratified sample) classified with and without TTA (None: all)
        "n_cam_per_class": 1,  # 07: test images per class explained with Grad-CAM and attention
        "n_test": 150,  # 08, 12, 13: test images (stratified sample) through the dual-stage pipeline (None: all)
        "n_errors": 8,  # 08: most confident mistakes shown
        "n_bootstrap": 200,  # 06, 08, 12, 13: bootstrap resamples (TTA gain, confidence intervals, subgroups)
        "n_meta": 150,  # 09: test images (stratified sample) classified with and without their metadata (None: all)
        "n_new": 6,  # 10: test images treated as new arrivals by predict
        "n_eval": 70,  # 10: test images in the labelled folder scored by evaluate (stratified sample)
        "n_isic": 200,  # 13: ISIC 2017 images (stratified sample) scored and compared (None: all of them)
    },
    "full": {
        "n_gallery": 3,
        "n_step_images": 4,
        "n_val": None,
        "n_worst": 8,
        "n_explorer": 12,
        "n_test_masks": None,
        "n_compare": 8,
        "n_train_demo": 1400,
        "n_val_demo": 600,
        "demo_views": 2,
        "retrain": True,
        "n_tta": None,
        "n_cam_per_class": 3,
        "n_test": None,
        "n_errors": 16,
        "n_bootstrap": 1000,
        "n_meta": None,
        "n_new": 14,
        "n_eval": 300,
        "n_isic": None,
    },
}

#: Parameters every pipeline notebook must declare in its `parameters` cell.
REQUIRED_PARAMETERS = ("mode", "data_dir", "out_dir")

#: Kernel name given to papermill (it also picks papermill's Python parameter translator).
KERNEL_NAME = "python3"

#: Seconds to wait for a kernel to start (a loaded 2-core machine can be slow).
START_TIMEOUT = 120


class NotebookFailed(RuntimeError):
    """A notebook of the pipeline raised: which one, in which cell, what, and where its output is.

    `cell_index` is papermill's: the index of the failing cell in the notebook as executed, where the
    injected-parameters cell counts (so it is one more than in the source notebook for every cell after
    the parameters). `exec_count` is the cell's "In [n]" and `source` its code, to find it either way.
    """

    def __init__(
        self,
        notebook: str,
        cell_index: int | None,
        ename: str,
        evalue: str,
        executed,
        exec_count: int | None = None,
        source: str = "",
    ):
        self.notebook, self.cell_index, self.ename, self.evalue = notebook, cell_index, ename, evalue
        self.executed, self.exec_count, self.source = Path(executed), exec_count, source or ""
        cell = f"cell {cell_index}" if cell_index is not None else "an unknown cell"
        if exec_count is not None:
            cell += f" (In [{exec_count}])"
        first = next((line.strip() for line in self.source.splitlines() if line.strip()), "")
        where = f", which starts: {first[:80]}" if first else ""
        super().__init__(
            f"notebook {notebook} failed in {cell}{where}\n{ename}: {evalue}\n"
            f"The partly executed notebook (traceback in that cell) is {self.executed}"
        )


# ------------------------------------------------------------------------------------------ kernel


def _kernel_classes():
    """KernelSpecManager / AsyncKernelManager subclasses that run "python3" in this interpreter."""
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class CurrentPythonKernelSpecManager(KernelSpecManager):
        """ "python3" is ipykernel's spec for sys.executable, with SKINLIB_STATIC=1; other names as usual."""

        def get_kernel_spec(self, kernel_name):
            if kernel_name != KERNEL_NAME:
                return super().get_kernel_spec(kernel_name)
            spec = get_kernel_dict()
            spec["env"] = {**spec.get("env", {}), STATIC_ENV: "1"}
            return self.kernel_spec_class(resource_dir=RESOURCES, **spec)

    class CurrentPythonKernelManager(AsyncKernelManager):
        """A kernel manager whose "python3" kernel is this interpreter (see the module docstring)."""

        @default("kernel_spec_manager")
        def _default_kernel_spec_manager(self):
            return CurrentPythonKernelSpecManager(data_dir=self.data_dir)

        @default("transport_encryption")
        def _default_transport_encryption(self):
            # CurveZMQ between the pipeline and its kernel where pyzmq supports it (silences ipykernel's
            # "running over TCP without encryption" warning); the channel is local either way.
            import zmq

            return "auto" if zmq.has("curve") else "disabled"

    return CurrentPythonKernelSpecManager, CurrentPythonKernelManager


def kernel_command() -> list[str]:
    """The command line the pipeline's kernels start with (for logs and tests)."""
    spec_manager, _ = _kernel_classes()
    return list(spec_manager().get_kernel_spec(KERNEL_NAME).argv)


# --------------------------------------------------------------------------------------- notebooks


def resolve_notebooks(names=None) -> list[Path]:
    """Notebook paths: all of `NOTEBOOKS` for None; else each name is a path to an existing .ipynb, or a
    notebook of `NOTEBOOKS` by file name, stem, or number prefix ("02", "02_classical_masks")."""
    if names is None:
        return [NOTEBOOK_DIR / name for name in NOTEBOOKS]
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    paths = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            paths.append(path.resolve())
            continue
        key = str(name).removesuffix(".ipynb")
        matches = [n for n in NOTEBOOKS if n.removesuffix(".ipynb") == key] or [
            n for n in NOTEBOOKS if n.split("_", 1)[0] == key
        ]
        if len(matches) != 1:
            raise ValueError(
                f"unknown notebook {name!r}: give a path to an .ipynb file or one of "
                f"{', '.join(NOTEBOOKS)} (name, stem or number)"
            )
        paths.append(NOTEBOOK_DIR / matches[0])
    return paths


def notebook_parameters(path: str | os.PathLike, mode: str, data_dir, out_dir) -> dict:
    """The values to inject into one notebook: the required three and the `MODES[mode]` names it declares.

    A notebook without a `parameters` cell declaring `REQUIRED_PARAMETERS` is an error (papermill would
    otherwise put the values in a cell nothing reads).
    """
    import papermill

    declared = set(papermill.inspect_notebook(str(path)))
    missing = [p for p in REQUIRED_PARAMETERS if p not in declared]
    if missing:
        raise ValueError(
            f"{Path(path).name}: its 'parameters' cell must define {', '.join(missing)} "
            "(tag a cell 'parameters' that sets mode, data_dir and out_dir)"
        )
    values = {"mode": mode, "data_dir": str(data_dir), "out_dir": str(out_dir), **MODES[mode]}
    return {name: value for name, value in values.items() if name in declared}


def run_notebook(path: str | os.PathLike, executed: str | os.PathLike, parameters: dict, cwd=None) -> float:
    """Execute one notebook with papermill into `executed`; seconds taken. Raises `NotebookFailed`."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _, kernel_manager = _kernel_classes()
    path, executed = Path(path), Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            language="python",
            progress_bar=False,
            log_output=False,
            start_timeout=START_TIMEOUT,
            cwd=str(cwd or path.parent),
            kernel_manager_class=kernel_manager,
        )
    except PapermillExecutionError as error:
        raise NotebookFailed(
            path.name,
            error.cell_index,
            error.ename,
            error.evalue,
            executed,
            exec_count=error.exec_count,
            source=error.source,
        ) from error
    return time.perf_counter() - started


def _write_timings(out_dir: Path, mode: str, records: list[dict], total: float) -> Path:
    path = out_dir / "timings.json"
    path.write_text(json.dumps({"mode": mode, "total_seconds": round(total, 2), "notebooks": records}, indent=2) + "\n")
    return path


def timing_table(records: list[dict]) -> str:
    """The per-notebook time summary as a small text table."""
    width = max([len("notebook")] + [len(r["notebook"]) for r in records])
    lines = [f"{'notebook':<{width}}  {'seconds':>8}  status"]
    lines += [f"{r['notebook']:<{width}}  {r['seconds']:>8.1f}  {r['status']}" for r in records]
    lines.append(f"{'total':<{width}}  {sum(r['seconds'] for r in records):>8.1f}")
    return "\n".join(lines)


def run_pipeline(mode: str = "quick", out_dir=None, notebooks=None, data_dir=None, progress: bool = True) -> dict:
    """Run the course notebooks in order; return the timings (also in `<out_dir>/timings.json`).

    mode: a key of `MODES`. out_dir: default `outputs/<mode>` (relative to the working directory).
    notebooks: None for all of `NOTEBOOKS`, else names or paths (see `resolve_notebooks`).
    data_dir: the HAM10000 folder (default $SKINLIB_DATA); checked before any kernel starts.
    progress: a tqdm bar over the notebooks and the time summary printed at the end.
    Raises `NotebookFailed` at the first failing notebook (outputs so far stay on disk).
    """
    from tqdm.auto import tqdm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    data = resolve_data_dir(data_dir).resolve()
    out = Path(out_dir if out_dir is not None else Path("outputs") / mode).resolve()
    paths = resolve_notebooks(notebooks)
    plans = [(path, notebook_parameters(path, mode, data, out)) for path in paths]  # fail before running
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    started = time.perf_counter()
    bar = tqdm(plans, desc=f"pipeline ({mode})", unit="notebook", disable=not progress, file=sys.stderr)
    try:
        for path, parameters in bar:
            bar.set_postfix_str(path.stem)
            executed = out / "notebooks" / path.name
            record = {"notebook": path.name, "executed": str(executed), "parameters": parameters}
            begun = time.perf_counter()
            try:
                run_notebook(path, executed, parameters)
                record["status"] = "ok"
            except NotebookFailed as failure:
                record.update(
                    status="failed", cell_index=failure.cell_index, error=f"{failure.ename}: {failure.evalue}"
                )
                raise
            finally:
                record.setdefault("status", "interrupted")
                record["seconds"] = round(time.perf_counter() - begun, 2)
                records.append(record)
                _write_timings(out, mode, records, time.perf_counter() - started)
    finally:
        bar.close()
        if progress and records:
            print(timing_table(records))
    return {
        "mode": mode,
        "out_dir": str(out),
        "total_seconds": round(time.perf_counter() - started, 2),
        "notebooks": records,
    }


# -------------------------------------------------------------------------------------------- book

#: What the book is made of besides the notebooks (copied into the staging folder by `build_book`).
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")


#: Sphinx `suppress_warnings` entries that would hide a missing glue key (myst-nb logs it as `mystnb.glue`).
GLUE_SUPPRESSIONS = frozenset({"mystnb", "mystnb.*", "mystnb.glue"})


def strict_glue_config(text: str) -> str:
    """The book's `_config.yml` (as text) without the suppressions of missing glue keys.

    The source-only build (`make book`) renders notebooks committed without outputs, so `_config.yml` tolerates
    `{glue:text}` keys it cannot find; the book of executed notebooks must have every number the prose quotes.
    """
    import yaml

    config = yaml.safe_load(text)
    sphinx_config = (config.get("sphinx") or {}).get("config") or {}
    kept = [entry for entry in sphinx_config.get("suppress_warnings", []) if entry not in GLUE_SUPPRESSIONS]
    if "suppress_warnings" in sphinx_config:
        sphinx_config["suppress_warnings"] = kept
    header = "# Staged by skinlib.pipeline.stage_book from the checkout's _config.yml: missing glue keys fail.\n"
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def stage_book(out_dir) -> Path:
    """Copy the book sources and the notebooks into `<out_dir>/book/`; return that folder.

    `_toc.yml` names the notebooks as `notebooks/NN_name`: here that path holds the executed notebook of
    `<out_dir>/notebooks/` where there is one, else the (output-free) source. The papermill-injected
    parameters cell is tagged `remove-cell`: it holds this machine's absolute paths, and every notebook
    prints its mode itself. Its `_config.yml` is `strict_glue_config`'s: a `{glue:text}` key the executed
    notebooks do not hold fails the build (a notebook never run into `<out_dir>` is staged without outputs,
    so its keys fail too).
    """
    import shutil

    import nbformat

    out = Path(out_dir).resolve()
    stage = out / "book"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_SOURCES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, stage / name)
    (stage / "_config.yml").write_text(strict_glue_config((REPO / "_config.yml").read_text()))
    (stage / "notebooks").mkdir()
    for source in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        executed = out / "notebooks" / source.name
        notebook = nbformat.read(executed if executed.is_file() else source, as_version=4)
        for cell in notebook.cells:
            tags = cell.metadata.get("tags", [])
            if "injected-parameters" in tags and "remove-cell" not in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]
        nbformat.write(notebook, stage / "notebooks" / source.name)
    return stage


def build_book(out_dir, warningiserror: bool = True) -> Path:
    """Build the Jupyter Book from the executed notebooks of a pipeline run; return the HTML folder.

    The book is staged in `<out_dir>/book/` (see `stage_book`) and built there with `jupyter-book build`
    (offline; `_config.yml` keeps execute_notebooks "off", so nothing runs again). The build log goes to
    `<out_dir>/book/build.log`; a failed build raises RuntimeError with its tail.
    """
    import shutil
    import subprocess

    stage = stage_book(out_dir)
    executable = Path(sys.executable).with_name("jupyter-book")
    executable = str(executable) if executable.exists() else shutil.which("jupyter-book")
    if not executable:
        raise RuntimeError("jupyter-book is not installed: pip install -e '.[course]'")
    command = [executable, "build", str(stage), "--keep-going"] + (["--warningiserror"] if warningiserror else [])
    result = subprocess.run(command, capture_output=True, text=True)
    log = stage / "build.log"
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        hint = ""
        if "[mystnb.glue]" in result.stdout + result.stderr:
            hint = (
                "\nA {glue:text} key the prose uses is in no executed notebook: run the notebook that glues it"
                f" into {Path(out_dir)} (a notebook not run there is staged from its source, without outputs)."
            )
        raise RuntimeError(f"the book did not build (log: {log}):\n{(result.stdout + result.stderr)[-3000:]}{hint}")
    return stage / "_build" / "html"


# --------------------------------------------------------------------------------------------- CLI


def cmd_pipeline(args) -> int:
    """`skinlib pipeline`: 0 when every notebook ran, 1 when one failed (the message says where)."""
    try:
        result = run_pipeline(
            args.mode, out_dir=args.out, notebooks=args.only, data_dir=args.data, progress=not args.quiet
        )
    except NotebookFailed as failure:
        print(f"skinlib pipeline: {failure}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"skinlib pipeline: {error}", file=sys.stderr)
        return 2
    print(
        f"executed notebooks in {Path(result['out_dir']) / 'notebooks'}, timings in "
        f"{Path(result['out_dir']) / 'timings.json'}"
    )
    if args.book:
        try:
            html = build_book(result["out_dir"])
        except RuntimeError as error:
            print(f"skinlib pipeline: {error}", file=sys.stderr)
            return 1
        print(f"book with the executed notebooks: {html / 'index.html'}")
    return 0


def add_pipeline_parser(subparsers):
    """Add the `pipeline` sub-command to an argparse sub-parsers object; returns its parser."""
    parser = subparsers.add_parser(
        "pipeline",
        help="run the course notebooks with papermill (executed notebooks, figures, timings)",
        description="Execute the course notebooks in order with papermill. Executed notebooks go to "
        "OUT/notebooks, figures and JSON to OUT, per-notebook times to OUT/timings.json.",
    )
    parser.add_argument(
        "--mode",
        choices=tuple(MODES),
        default="quick",
        help="quick: small samples; full: whole splits, the book's numbers (default: quick)",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default: outputs/MODE)")
    parser.add_argument("--data", metavar="DIR", help="HAM10000 folder (default: $SKINLIB_DATA)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these notebooks: number (01), name (01_data_exploration) or .ipynb path",
    )
    parser.add_argument(
        "--book",
        action="store_true",
        help="then build the Jupyter Book from the executed notebooks into OUT/book/_build/html",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or time summary")
    parser.set_defaults(func=cmd_pipeline)
    return parser


__all__ = [
    "REPO",
    "NOTEBOOK_DIR",
    "NOTEBOOKS",
    "MODES",
    "REQUIRED_PARAMETERS",
    "KERNEL_NAME",
    "NotebookFailed",
    "kernel_command",
    "resolve_notebooks",
    "notebook_parameters",
    "run_notebook",
    "timing_table",
    "run_pipeline",
    "BOOK_SOURCES",
    "strict_glue_config",
    "stage_book",
    "build_book",
    "cmd_pipeline",
    "add_pipeline_parser",
]
