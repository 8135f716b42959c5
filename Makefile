# The DSS stack. Quick start: `make up`, then `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQUIREMENTS := web-server/requirements.txt dispatcher/requirements.txt \
                inference-server/requirements.txt tests/requirements.txt

.PHONY: install up web web-dev dispatcher inference test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS) web-server/pyproject.toml dispatcher/pyproject.toml inference-server/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(addprefix -r ,$(REQUIREMENTS))
	$(PY) -m pip install -q --no-deps -e web-server -e dispatcher -e inference-server
	touch $@

up: install
	$(PY) -m dss_dispatcher.devstack

web: install  # migrations, then gunicorn with web-server/gunicorn.conf.py, as in production
	$(PY) -m dss_server run

web-dev: install
	$(PY) -m dss_server run --dev

dispatcher: install
	$(PY) -m dss_dispatcher

inference: install
	$(PY) -m dss_inference

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var
