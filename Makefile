# transformer-theory — every target creates .venv and installs what it needs.
#   make test        the claims x subjects, unit and meta tests (ci profile, ~minutes)
#   make test-slow   every claim under the thorough profile, and the tests marked slow
#   make bench       speed and memory of the accelerated path (benchmarks/results.json)
#   make sweep       every claim under many seeds (dev profile): failures and headroom per claim
#   make report      the theory report in report/
#   make examples    recipes checking real libraries (examples/, their own examples/.venv)
PYTHON ?= python3
# PyTorch is an optional extra; `make test` installs it to run the torch conformance suite.
# torch==2.13.0 is the CPU build available on this project's machines; set TORCH= to skip it.
TORCH  ?= torch==2.13.0
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test test-slow report venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH),$(BIN)/python -m pip install --quiet --disable-pip-version-check '$(TORCH)')
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,report,fast,distributed]'
	touch $(STAMP)

# Single-threaded BLAS: the tests use small matrices, where threads only add overhead; the
# CLI pins itself and its workers the same way (theory/executor.py).
THREADS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1

# JOBS: pytest-xdist workers (-n) and the CLI's --jobs. Default: one per core where there are
# more than 2 (on 2 cores the workers' start-up and the tests' own process pools cost more
# than they give), else 1.
CORES := $(shell $(PYTHON) -c "import os; print(len(os.sched_getaffinity(0)))" 2>/dev/null || echo 1)
JOBS ?= $(shell [ $(CORES) -gt 2 ] && echo $(CORES) || echo 1)
XDIST := $(if $(filter-out 1,$(JOBS)),-n $(JOBS),)
# The CLI's long runs (sweep, report) have no start-up to amortise: every core unless JOBS is set.
CLI_JOBS := $(if $(filter command line environment,$(origin JOBS)),$(JOBS),auto)

test: $(STAMP)
	$(THREADS) TT_PROFILE=ci $(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-profile=ci -m "not slow" $(XDIST)

# The thorough profile: every claim on every subject with 1000 Hypothesis examples, 8x the
# Monte Carlo samples and the long exhaustive runs (Dyck to length 12), plus the tests marked slow.
# Hours on 2 cores: dyck.recognizer_exact and dyck.soft_recognizer take 15-17 min each per subject.
# SLOW_ARGS narrows the claim run, e.g. make test-slow SLOW_ARGS='-k reference' (one subject).
SLOW_ARGS ?=
test-slow: $(STAMP)
	$(THREADS) TT_PROFILE=thorough $(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-profile=thorough -m "slow or not slow" --durations=15 $(XDIST) $(SLOW_ARGS) tests/test_claims.py
	$(THREADS) TT_PROFILE=thorough $(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-profile=thorough -m slow $(XDIST) || test $$? -eq 5  # 5: none collected (jax absent)
	$(MAKE) sweep SUBJECT=reference SEEDS=1-200
	$(MAKE) sweep SUBJECT=fast SEEDS=1-200
	$(MAKE) sweep SUBJECT=torch SEEDS=1-50

report: $(STAMP)
	$(BIN)/transformer-theory report --out report --subjects reference,fast,torch --jobs $(CLI_JOBS)

# make sweep: the claims under seeds SEEDS (dev profile) on SUBJECT; every failure with its seed,
# and each claim's worst max_error / tolerance in benchmarks/headroom-SUBJECT.json. Not run by
# make test (a dev run of every claim per seed: ~20 s of one core each). CLAIMS narrows it (a glob);
# EXTEND=1 merges into the committed file (more seeds, or other claims over its seeds); REPLACE=1
# puts the claims swept now in place of their rows (a claim re-swept after its bound changed).
SEEDS ?= 1-20
SUBJECT ?= reference
CLAIMS ?= *
.PHONY: sweep
sweep: $(STAMP)
	$(THREADS) $(BIN)/transformer-theory verify --subject $(SUBJECT) --profile dev --seeds $(SEEDS) --claims '$(CLAIMS)' --jobs $(CLI_JOBS) --headroom benchmarks/headroom-$(SUBJECT).json $(if $(EXTEND),--extend) $(if $(REPLACE),--replace)

clean:
	rm -rf $(VENV) report .pytest_cache .hypothesis

# make bench: speed and memory of the accelerated path (benchmarks/bench.py) against the
# reference and torch SDPA, as ratios measured in one process; writes benchmarks/results.json.
# Not a test (nothing asserts a timing); about 10 minutes on 2 cores, --quick for a smaller grid.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py --out benchmarks/results.json

# make examples: one `check` recipe per real library (transformers, x-transformers, timm, flax,
# keras, tinygrad, performer-pytorch, torch.nn) in examples/.venv, so that .venv keeps
# torch==2.13.0 and CI installs only torch. Not part of `make test`. ONLY='timm,flax' narrows it.
.PHONY: examples
examples:
	$(MAKE) -C examples PYTHON=$(PYTHON) $(if $(ONLY),ONLY='$(ONLY)')
