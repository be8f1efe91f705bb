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

# The project's own modules compiled as pip compiles every installed package (and this one,
# installed as in deploy/): otherwise each start compiles the ~120 it imports (about 0.5 s of CPU).
install: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 cli.py scheduler.py scheduler_commands.py service.py service_commands.py \
		settings.py bot outreach models web

# PostgreSQL and Redis (the tests' throwaway servers), Chromium and a Chinese font (browser tests), from Debian.
DEBIAN_PACKAGES := postgresql redis-server chromium fonts-noto-cjk
system-deps:
	@missing=""; \
	{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian's packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

run: install
	$(BIN)/nuanxin migrate
	$(BIN)/nuanxin demo-data
	$(BIN)/nuanxin run

test: install system-deps lint
	$(BIN)/python -m pytest -q

bench: install system-deps
	$(BIN)/python benchmarks/run.py all --json

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy bot outreach models web cli.py settings.py scheduler.py scheduler_commands.py service.py service_commands.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
