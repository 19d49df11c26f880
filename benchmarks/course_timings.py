"""How long each course notebook takes, read from `skinlib pipeline` runs (the instructor guide's table).

    skinlib pipeline --mode quick --out outputs/quick
    python benchmarks/course_timings.py outputs/quick [OTHER_RUN ...] [--mode quick]
        [--out benchmarks/results/course_timings.json]
    skinlib pipeline --mode full --out outputs/full
    python benchmarks/course_timings.py outputs/full --mode full    # -> benchmarks/results/course_timings_full.json

Nothing is timed or estimated here: every number is one a run recorded. For each notebook of the course (in
`_toc.yml` order) the time is the `seconds` the pipeline wrote into the run's `timings.json` (kernel start to the
last cell). `skinlib pipeline --only ...` rewrites that file with the notebooks of its own call, so for a notebook
it does not list, the `duration` papermill wrote into the executed notebook (`OUT/notebooks/*.ipynb`) is used.
Only notebooks that ran to the end in the requested mode count; when several runs hold one, the run named last
wins. A notebook no run recorded is left out, and the book's table says "not recorded".

The machine is described by this script (CPU count, architecture): run it on the machine that made the runs.
Each mode has its own record (`default_out`); the book's `{chapter-time}` role reads them all (book/_ext).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from skinlib.pipeline import MODES, NOTEBOOKS

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "course_timings.json"


def default_out(mode: str) -> Path:
    """Where a mode's record goes unless `--out` says otherwise: quick keeps `course_timings.json`, another mode
    gets its own file (`course_timings_full.json`), so recording one mode never overwrites the other."""
    return OUT if mode == "quick" else RESULTS / f"course_timings_{mode}.json"


def display(path: Path) -> str:
    """A run folder as the record names it: relative to the working directory when inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def from_timings_file(run: Path, mode: str) -> dict[str, dict]:
    """notebook -> record, from the pipeline's `timings.json` of one run (finished notebooks only)."""
    path = run / "timings.json"
    if not path.is_file():
        return {}
    timings = json.loads(path.read_text())
    if timings.get("mode") != mode:
        return {}
    return {
        entry["notebook"]: {"seconds": round(float(entry["seconds"]), 1), "source": "timings.json"}
        for entry in timings.get("notebooks", [])
        if entry.get("status") == "ok"
    }


def from_executed_notebooks(run: Path, mode: str) -> dict[str, dict]:
    """notebook -> record, from papermill's metadata in the executed notebooks of one run."""
    found = {}
    for path in sorted((run / "notebooks").glob("*.ipynb")):
        papermill = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if papermill.get("exception") or papermill.get("duration") is None:
            continue
        if (papermill.get("parameters") or {}).get("mode") != mode:
            continue
        found[path.name] = {
            "seconds": round(float(papermill["duration"]), 1),
            "source": "papermill duration",
            "started": papermill.get("start_time"),
        }
    return found


def collect(runs: list[Path], mode: str, notebooks=NOTEBOOKS) -> list[dict]:
    """One record per notebook some run holds, in course order; later runs override earlier ones."""
    chosen: dict[str, dict] = {}
    for run in runs:
        executed = from_executed_notebooks(run, mode)
        timed = from_timings_file(run, mode)
        for name in notebooks:
            record = timed.get(name) or executed.get(name)
            if record is not None:
                if name in timed and name in executed:
                    record = {**record, "started": executed[name].get("started")}
                chosen[name] = {"notebook": name, **record, "run": display(run)}
    return [chosen[name] for name in notebooks if name in chosen]


def without_out(argv: list[str]) -> list[str]:
    """The arguments as a command line to record, without `--out` (where the record went is not how it was made)."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--out":
            skip = True
        elif not word.startswith("--out="):
            kept.append(word)
    return kept


def make_record(runs: list[Path], mode: str, note: str | None, argv: list[str]) -> dict:
    notebooks = collect(runs, mode)
    record = {
        "mode": mode,
        "notebooks": notebooks,
        "notebooks_in_course": len(NOTEBOOKS),
        "notebooks_recorded": len(notebooks),
        "total_seconds": round(sum(n["seconds"] for n in notebooks), 1),
        "runs": [display(run) for run in runs],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "command": shlex.join(["python", "benchmarks/course_timings.py", *argv]),
    }
    if note:
        record["note"] = note
    return record


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="output folders of `skinlib pipeline` runs")
    parser.add_argument("--mode", choices=tuple(MODES), default="quick", help="the pipeline mode to read")
    parser.add_argument("--note", help="a sentence on how the runs were made (e.g. the machine was shared)")
    parser.add_argument("--out", type=Path, help="the record to write (default: the mode's file in results/)")
    args = parser.parse_args(argv)
    args.out = args.out or default_out(args.mode)
    missing = [str(run) for run in args.runs if not run.is_dir()]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)}")
    record = make_record(args.runs, args.mode, args.note, without_out(argv))
    if not record["notebooks"]:
        parser.error(f"no finished {args.mode}-mode notebook in {', '.join(map(str, args.runs))}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for entry in record["notebooks"]:
        print(f"{entry['notebook']:<34} {entry['seconds']:8.1f} s  ({entry['source']}, {entry['run']})")
    print(f"{record['notebooks_recorded']} of {record['notebooks_in_course']} notebooks recorded; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
