# `make run` and `make test` do all set-up on a fresh Debian machine with Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
export PORT
PYTEST_ARGS ?=
TRANSLATIONS := themes/default/translations

.PHONY: run test check audit lock demo bench soak translations browser-deps clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Exactly the locked releases, each checked against its hash (requirements.lock: the main
# dependencies, the test extra and what builds the editable install, pip included); then the
# provider itself, built with the locked setuptools.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/activate
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# After changing dependencies in pyproject.toml; LOCK_ARGS=--upgrade takes the newest releases.
LOCK_ARGS ?=
lock: | $(BIN)/activate
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --extra test --build-deps-for editable --strip-extras \
	  --no-emit-find-links --no-emit-index-url $(LOCK_ARGS) -o requirements.lock pyproject.toml

# Supply chain: bandit over idp/ (any finding fails; false positives are justified where they
# stand, `# nosec BXXX  # reason`) and pip-audit against the lock file (.ci/audit).
check: $(VENV)/.installed
	$(BIN)/bandit -c pyproject.toml -r idp -q
	BIN=$(BIN) .ci/audit

audit: $(VENV)/.installed
	BIN=$(BIN) .ci/audit

translations: $(VENV)/.installed
	$(BIN)/pybabel compile -d $(TRANSLATIONS) -D messages

run: $(VENV)/.installed translations
	$(BIN)/idp db upgrade
	$(BIN)/idp demo seed
	$(BIN)/idp serve

# The provider plus two business systems signing in through it (clients/demo_rp, docs/demo.md).
# Ctrl-C stops all three, and so does any one of them stopping. Background jobs ignore SIGINT,
# so the trap stops the demo systems; the provider has Ctrl-C from the terminal already (a
# second signal while the server stops can hang a worker), so it gets TERM only if still running.
DEMO_ISSUER = $(or $(IDP_ISSUER),http://127.0.0.1:$(PORT))
demo: $(VENV)/.installed translations
	$(BIN)/idp db upgrade
	$(BIN)/idp demo seed
	@stop() { \
	  trap - INT TERM EXIT; kill $$systems 2>/dev/null; \
	  if [ "$$1" = int ]; then for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 $$idp 2>/dev/null || break; sleep 0.5; done; fi; \
	  kill $$idp 2>/dev/null; wait; \
	}; \
	trap 'stop int; exit 130' INT; trap 'stop; exit 143' TERM; trap stop EXIT; \
	$(BIN)/idp serve & idp=$$!; \
	DEMO_SYSTEM=gaoqi DEMO_PORT=5001 IDP_ISSUER=$(DEMO_ISSUER) $(BIN)/python -m clients.demo_rp & systems=$$!; \
	DEMO_SYSTEM=kexiaoqi DEMO_PORT=5002 IDP_ISSUER=$(DEMO_ISSUER) $(BIN)/python -m clients.demo_rp & systems="$$systems $$!"; \
	sleep 2; \
	echo; \
	echo "  统一用户登录       $(DEMO_ISSUER)/"; \
	echo "  高新技术企业认定   http://127.0.0.1:5001/"; \
	echo "  科技型中小企业评价 http://127.0.0.1:5002/"; \
	echo "  demo_unit / Demo@2026pass (法人登录) — Ctrl-C stops all three"; \
	echo; \
	while kill -0 $$idp $$systems 2>/dev/null; do sleep 1; done

# Debian chromium (Playwright drives it; no browser download) and CJK fonts for the browser tests.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

test: $(VENV)/.installed translations browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmark (bench/README.md): our provider on `idp serve` (granian, PostgreSQL, Redis) and
# node-oidc-provider side by side on loopback; results in bench/results/, docs/bench.png, README.
BENCH_ARGS ?=
bench: $(VENV)/.installed translations
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The soak (docs/soak.md): `idp serve` on PostgreSQL + Redis under mixed logins, code exchanges,
# refreshes, userinfo and introspection for SOAK_MINUTES (fractions allowed: 0.5 = 30 s), a
# database and Redis key prefix of its own; fails when a check fails. Results in bench/results/.
SOAK_MINUTES ?= 10
SOAK_ARGS ?=
soak: $(VENV)/.installed translations
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis
