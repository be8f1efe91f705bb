# nuanxin — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps run test bench lint clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# PostgreSQL (for the tests' throwaway server) and Chromium (browser tests), from Debian.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		echo "installing PostgreSQL from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; fi
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing Chromium from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; fi

run: install
	$(BIN)/nuanxin migrate
	$(BIN)/nuanxin demo-data
	$(BIN)/nuanxin run

test: install system-deps
	$(BIN)/python -m pytest -q

bench: install system-deps
	$(BIN)/python benchmarks/run.py all --json

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy bot outreach models web cli.py settings.py scheduler.py scheduler_commands.py service.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
