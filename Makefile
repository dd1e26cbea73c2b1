# The two commands that do everything on a fresh machine (see README):
#   make demo   - install if needed, run the smoke suite offline with the default offline model, print the leaderboard
#   make test   - install if needed (with test tools), run the whole test suite
.PHONY: demo test bench
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

demo:
	scripts/bootstrap.sh
	.venv/bin/evalgemma run --suite smoke --model minilm --offline --device cpu --store results/store
	.venv/bin/evalgemma leaderboard --suite smoke --store results/store --reference none

test:
	scripts/bootstrap.sh --test
	.venv/bin/python -m pytest -q -p no:cacheprovider

bench:
	scripts/bootstrap.sh --test
	.venv/bin/python benchmarks/bench_sweep.py
	.venv/bin/python benchmarks/bench_xtreme_up_search.py
