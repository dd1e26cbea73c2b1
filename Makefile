# The two commands that do everything on a fresh machine (see README):
#   make demo   - install if needed, run the smoke suite offline with the default offline model, print the leaderboard
#   make test   - install if needed (with test tools), run the test suite (all but the tests marked slow)
# make test-slow runs the slow ones (kills, Ray, multi-minute runs); .ci/run runs both.
.PHONY: demo test test-slow bench
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

demo:
	scripts/bootstrap.sh
	.venv/bin/evalgemma run --suite smoke --model minilm --offline --device cpu --store results/store
	.venv/bin/evalgemma leaderboard --suite smoke --store results/store --reference none

test:
	scripts/bootstrap.sh --test
	.venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow"

test-slow:
	scripts/bootstrap.sh --test
	.venv/bin/python -m pytest -q -p no:cacheprovider -m slow

bench:
	scripts/bootstrap.sh --test
	.venv/bin/python benchmarks/bench_sweep.py
	.venv/bin/python benchmarks/bench_xtreme_up_search.py
