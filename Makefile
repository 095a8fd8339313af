# cremad: the paper's pipeline in three commands (features, loso, figures), plus demo/test/bench.
# Every target creates the virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/CREMA-D
CORPUS ?= cremad
MODEL ?= 2
EXP ?= paper
SEEDS ?=  # e.g. 0,1,2: one run per seed (runs/<corpus>/<exp>/model<k>/seed<s>); empty: the experiment's seed
RUNS ?= runs
CACHE ?= cache
FIGURES ?= figures
CLIP ?=  # Fig. 2's clip; empty: the paper's 1015_DFA_ANG_XX when the corpus has it
DEMO ?= demo
META ?= $(DATA)
# Emo-DB (a folder holding wav/) and CASIA (<speaker>/<emotion>/<id>.wav) for make results and make emodb.
EMODB ?= data/emodb
CASIA ?= data/casia
RESULT_SEEDS ?= 0,1,2
DEMO_EPOCHS ?= 15  # epochs of make demo and of make results' demo rows (the paper recipe at 15 epochs)
DEMO_EXP ?= demo  # make demo's recipe: experiments/demo.toml (32 / 64 units, 15 epochs)
JOBS ?= 1  # loso/table2: folds trained at once, each its own process (cremad loso --jobs)
CPU_JOBS ?= 2  # demo/results/emodb: folds at once, one TensorFlow thread each (experiments/README.md#cost)
FEATURES ?= mfcc  # the baseline's functionals: mfcc or rich
CHROMIUM ?= chromium  # docs-report's screenshot (Debian: apt-get install chromium)
CLIPS ?=  # e.g. --skip-bad or --drop-conflicting: which clips features, loso, table2 and baseline read (one cache for all)

.PHONY: install lint format demo docs-figure docs-report report test test-fast features loso baseline figures table2 results perception data emodb bench clean-demo

$(BIN)/cremad: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $@

install: $(BIN)/cremad

# Everything, model training included (CI runs this).
test: install
	$(BIN)/python -m pytest -q

# ruff's lint rules and formatter (pyproject.toml); CI runs this before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Rewrite the tree in ruff's format and apply its safe fixes.
format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The edit-test loop: all but the tests marked slow (the ones that train models).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

features: install
	$(BIN)/cremad features --data $(DATA) --corpus $(CORPUS) --cache-dir $(CACHE) $(CLIPS)

loso: install
	$(BIN)/cremad loso --model $(MODEL) --data $(DATA) --corpus $(CORPUS) --experiment $(EXP) --runs $(RUNS) --cache-dir $(CACHE) \
		$(if $(SHARD),--shard $(SHARD)) $(if $(FOLDS),--folds $(FOLDS)) $(if $(BACKEND),--backend $(BACKEND)) \
		$(if $(strip $(SEEDS)),--seeds $(SEEDS)) --jobs $(strip $(JOBS)) $(CLIPS)

# The classical yardstick in the same folds: functionals + SVM (under a minute on Emo-DB).
baseline: install
	$(BIN)/cremad baseline --data $(DATA) --corpus $(CORPUS) --features $(strip $(FEATURES)) --experiment $(EXP) \
		--runs $(RUNS) --cache-dir $(CACHE) $(CLIPS)

figures: install
	$(BIN)/cremad figures --runs $(RUNS) --corpus $(CORPUS) --experiment $(EXP) --data $(DATA) \
		$(if $(strip $(CLIP)),--clip $(CLIP)) --out $(FIGURES)/$(CORPUS)/$(EXP)

# The paper's whole result: models 1-4 in leave-one-actor-out folds on $(DATA), then Table II and the
# figures. First a rough projection of the wall time, from 3 timed epochs of one small fold per model
# (bench/bench_loso.py, about a minute; epochs per fold from finished folds, else the max_epochs bound).
table2: install
	$(BIN)/python bench/bench_loso.py --epochs-from $(RUNS)/$(CORPUS)/$(EXP)
	for model in $$($(BIN)/cremad models); do \
		$(BIN)/cremad loso --model $$model --data $(DATA) --corpus $(CORPUS) --experiment $(EXP) --runs $(RUNS) --cache-dir $(CACHE) \
			$(if $(BACKEND),--backend $(BACKEND)) $(if $(strip $(SEEDS)),--seeds $(SEEDS)) --jobs $(strip $(JOBS)) $(CLIPS) || exit 1; \
	done
	$(BIN)/cremad figures --runs $(RUNS) --corpus $(CORPUS) --experiment $(EXP) --data $(DATA) \
		$(if $(strip $(CLIP)),--clip $(CLIP)) --out $(FIGURES)/$(CORPUS)/$(EXP)

# README's results table: models 1-4 (seeds $(RESULT_SEEDS)) and both SVMs (MFCC, rich functionals) on Emo-DB, CASIA and
# the demo corpus (at $(DEMO_EPOCHS) epochs, as `make demo`), then figures/<corpus>/$(EXP)/table_full.md.
# SVM_AUGMENT=1 also fits both SVMs on the recipe's augmented copies (EXP=beyond-speed). Hours on 2 CPU cores.
results: install
	$(BIN)/cremad synth $(DEMO)/CREMA-D --actors 6 --seed 0
	for spec in "emodb $(EMODB)" "casia $(CASIA)" "cremad $(DEMO)/CREMA-D --epochs $(DEMO_EPOCHS)"; do \
		set -- $$spec; corpus=$$1; data=$$2; shift 2; \
		for model in $$($(BIN)/cremad models); do \
			$(BIN)/cremad loso --model $$model --data $$data --corpus $$corpus --experiment $(EXP) --seeds $(RESULT_SEEDS) \
				--runs $(RUNS) --cache-dir $(CACHE) --no-save-models --jobs $(strip $(CPU_JOBS)) $$* || exit 1; \
		done; \
		for features in mfcc rich; do for augment in "" $(if $(strip $(SVM_AUGMENT)),--augment); do \
			$(BIN)/cremad baseline --data $$data --corpus $$corpus --experiment $(EXP) --features $$features \
				--runs $(RUNS) --cache-dir $(CACHE) $$augment || exit 1; \
		done; done; \
		$(BIN)/cremad figures --runs $(RUNS) --corpus $$corpus --experiment $(EXP) --data $$data --out $(FIGURES)/$$corpus/$(EXP) || exit 1; \
	done

perception: install
	$(BIN)/cremad perception --runs $(RUNS) --experiment $(EXP) --meta $(META) --out $(FIGURES)/cremad/$(EXP)/perception

# Emo-DB (real speech, 10 speakers) with the faithful, tuned and speakernorm recipes (~55 min on 2 cores),
# each beside the baseline's two functional sets.
emodb: install
	for exp in paper tuned speakernorm; do for model in $$($(BIN)/cremad models); do \
		$(BIN)/cremad loso --model $$model --data $(EMODB) --corpus emodb --experiment $$exp --runs $(RUNS) --cache-dir $(CACHE) --no-save-models \
			--jobs $(strip $(CPU_JOBS)) || exit 1; \
	done; for features in mfcc rich; do \
		$(BIN)/cremad baseline --data $(EMODB) --corpus emodb --features $$features --experiment $$exp --runs $(RUNS) --cache-dir $(CACHE) || exit 1; \
	done; done

data: install
	$(BIN)/cremad download --dest $(DATA)

# The whole paper pipeline on the built-in synthetic corpus: 6 actors, 4 models, 6 folds each, with
# experiments/demo.toml (32 / 64-unit LSTMs, 15 epochs: about 10 min on 2 cores; DEMO_EXP=paper: 64 / 128).
demo: install
	$(BIN)/cremad synth $(DEMO)/CREMA-D --actors 6 --seed 0
	$(BIN)/cremad features --data $(DEMO)/CREMA-D --cache-dir $(CACHE)
	for model in $$($(BIN)/cremad models); do \
		$(BIN)/cremad loso --model $$model --data $(DEMO)/CREMA-D --runs $(DEMO)/runs --cache-dir $(CACHE) \
			--experiment $(strip $(DEMO_EXP)) --epochs $(DEMO_EPOCHS) --jobs $(strip $(CPU_JOBS)) || exit 1; \
	done
	$(BIN)/cremad figures --runs $(DEMO)/runs --corpus cremad --experiment $(strip $(DEMO_EXP)) --data $(DEMO)/CREMA-D \
		--clip 1001_DFA_ANG_XX --out $(DEMO)/figures
	$(BIN)/cremad report --runs $(DEMO)/runs --corpus cremad --experiment $(strip $(DEMO_EXP)) --data $(DEMO)/CREMA-D \
		--out $(DEMO)/report

# docs/fig2.png, the README's picture: Fig. 2 as `make demo` draws it (models 1 and 2 in the fold that
# holds out actor 1001; after `make demo` nothing retrains), stored with 256 colours to stay small.
docs-figure: install
	$(BIN)/cremad synth $(DEMO)/CREMA-D --actors 6 --seed 0
	for model in 1 2; do \
		$(BIN)/cremad loso --model $$model --data $(DEMO)/CREMA-D --runs $(DEMO)/runs --cache-dir $(CACHE) \
			--experiment $(strip $(DEMO_EXP)) --epochs $(DEMO_EPOCHS) --folds 1001 --threads 1 || exit 1; \
	done
	$(BIN)/cremad figures --runs $(DEMO)/runs --corpus cremad --experiment $(strip $(DEMO_EXP)) --data $(DEMO)/CREMA-D \
		--models 1,2 --clip 1001_DFA_ANG_XX --out $(DEMO)/figures-docs
	mkdir -p docs
	$(BIN)/python -c "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').quantize(256).save(sys.argv[2], optimize=True)" \
		$(DEMO)/figures-docs/fig2_1001_DFA_ANG_XX.png docs/fig2.png

# docs/report.png, the README's picture of `cremad report`: models 1-3 in the fold that holds out actor
# 1001 (models 1 and 2 are docs-figure's runs), one confusion cell of model 2, drawn by headless Chromium.
docs-report: install
	$(BIN)/cremad synth $(DEMO)/CREMA-D --actors 6 --seed 0
	for model in 1 2 3; do \
		$(BIN)/cremad loso --model $$model --data $(DEMO)/CREMA-D --runs $(DEMO)/runs --cache-dir $(CACHE) \
			--experiment $(strip $(DEMO_EXP)) --epochs $(DEMO_EPOCHS) --folds 1001 --threads 1 || exit 1; \
	done
	$(BIN)/cremad report --runs $(DEMO)/runs --corpus cremad --experiment $(strip $(DEMO_EXP)) --data $(DEMO)/CREMA-D \
		--models 1,2,3 --out $(DEMO)/report-docs
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1180 --virtual-time-budget=10000 \
		--screenshot=$(abspath $(DEMO))/report-docs.png 'file://$(abspath $(DEMO))/report-docs/index.html#model=2&true=HAP&pred=ANG'
	mkdir -p docs
	$(BIN)/python -c "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').quantize(256).save(sys.argv[2], optimize=True)" \
		$(DEMO)/report-docs.png docs/report.png

# Every test clip of $(RUNS)'s runs, its predictions, audio, spectrogram and attention, in one offline page.
report: install
	$(BIN)/cremad report --runs $(RUNS) --corpus $(CORPUS) --experiment $(EXP) --data $(DATA) \
		--out $(FIGURES)/$(CORPUS)/$(EXP)/report

bench: install
	$(BIN)/python bench/bench_features.py --out bench/results/features.json
	$(BIN)/python bench/bench_report.py --out bench/results/report.json
	$(BIN)/python bench/bench_models.py --profile --out bench/results/models.json
	$(BIN)/python bench/bench_loso.py --epochs-from $(RUNS)/emodb/paper --out bench/results/loso.json
	$(BIN)/python bench/bench_jobs.py --out bench/results/jobs.json
	$(BIN)/python bench/bench_ray.py --out bench/results/ray.json

clean-demo:
	rm -rf $(DEMO)
