# One command each: `make test` (set up + run the tests), `make course` (set up + run the main job).
# Each target creates the virtual environment it needs on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SKINLIB_DATA ?= $(abspath ../shared/data/ham10000)
MODE ?= quick
export SKINLIB_DATA

.PHONY: setup test course book book-student diagrams lab clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[course,test]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest

course: setup
	$(VENV)/bin/skinlib check-data
	$(VENV)/bin/skinlib split --verify
	$(VENV)/bin/skinlib pipeline --mode $(MODE) --book

book: setup
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

# The book without the exercises' solutions, for instructors who grade: SKINLIB_STUDENT_BOOK=1 switches on
# sphinx-exercise's hide_solutions (book/_ext/exercise_numbers.py), which drops every solution block unparsed.
# The committed _config.yml is untouched. Output: _build/student/html (a link to jupyter-book's
# _build/student/_build/html). The executed book without solutions: SKINLIB_STUDENT_BOOK=1 skinlib pipeline --book.
book-student: setup
	SKINLIB_STUDENT_BOOK=1 $(VENV)/bin/jupyter-book build . --path-output _build/student --warningiserror --keep-going
	ln -sfn _build/html _build/student/html

# The book's diagrams (book/figures/*.svg), redrawn from the code and the shipped models; tests/test_diagrams.py
# fails when the committed ones are out of date.
diagrams: setup
	$(PY) -m skinlib.diagrams

# JupyterLab on the course notebooks, in this project's environment (its kernel, its skinlib), with SKINLIB_DATA
# exported as an absolute path (the notebooks run from notebooks/). Options pass through LAB_ARGS, for example
# make lab LAB_ARGS="--no-browser --port 8890". See book/instructor.md.
LAB_ARGS ?=
lab: setup
	cd notebooks && SKINLIB_DATA="$(abspath $(SKINLIB_DATA))" JUPYTER_PREFER_ENV_PATH=1 \
		"$(abspath $(VENV))/bin/jupyter" lab $(LAB_ARGS)

clean:
	rm -rf _build .pytest_cache
