# evograd - one non-recursive Makefile.
#   make            library (build/release/libevograd.a) and the command (build/release/evograd,
#                   linked as build/evograd)
#   make run        the demo: EvoGrad against the baseline (runner/demo.sh, results/demo-*/);
#                   make run CONFIG=FILE ARGS="key=value ...": that one run and its plot
#   make plots      every figure and table under results/ (gnuplot, plots/*.gp), from the runs
#                   tables (`evograd table`; groups of the varied config keys, mean ± std over
#                   seeds): a figure per run (results/*/*/train.png; not for lft runs), the toy1d
#                   figures per results/<name>/ holding toy1d runs (toy1d_*.png), and per
#                   results/<name>/ holding rotation runs the learned angles
#                   (rotation_angle.png) and the table (rotation_table.{csv,md}), mwn runs the
#                   accuracies, sample weights and weighting curves (mwn_{accuracy,weights,
#                   curve}.png) and the table (mwn_table.{csv,md}), lft runs the validation
#                   accuracy, training episodes and FT parameters (lft_{val,train,ft}.png) and
#                   the table (lft_table.{csv,md}), runs with diagnostics diag_cosine.png, and
#                   per numeric config key that varies across a folder's runs the sweep figure
#                   sweep_<key>.png (final_test_acc against it, plots/sweep.sh).
#                   PLOT_FORMAT=png|pdf|svg (the files' format, png by default), PLOT_TITLES=0
#                   (figures without titles): make plots PLOT_FORMAT=svg PLOT_TITLES=0
#   make test       the library's floors (tests/layers.sh), then the Criterion suite (installs
#                   missing packages first, see .ci/ensure-deps)
#   make bench      speed and memory benchmarks (never part of make test)
#   make valgrind   the suite under valgrind (memcheck)
#   make fuzz       libFuzzer on the config loader for FUZZ_TIME seconds (clang-14)
#   make format     clang-format every source file
#   make clean
# Variants: DEBUG=1 (-O0), SAN=1 (ASan+UBSan), WERROR=1 (-Werror, as CI builds).
# Each variant builds into its own folder, so switching does not mix objects.

SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := all

PKGS      := openblas yaml-0.1 zlib libpng
TEST_PKGS := criterion

VARIANT := release
OPT     := -O2 -g
ifeq ($(DEBUG),1)
  VARIANT := debug
  OPT     := -O0 -g
endif
ifeq ($(SAN),1)
  VARIANT := $(VARIANT)-san
  OPT     += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  SANLD   := -fsanitize=address,undefined
  # Criterion's runner itself sometimes leaks one 48-byte block at exit (calloc inside
  # libcriterion.so, seen on long parallel runs); only that library's leaks are suppressed.
  export LSAN_OPTIONS ?= suppressions=$(abspath tests/lsan.supp)
endif
BUILD ?= build
B := $(BUILD)/$(VARIANT)

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
        -Wwrite-strings -Wdouble-promotion
ifeq ($(WERROR),1)
  WARN += -Werror
endif

# pkg-config is asked once, and only after .ci/ensure-deps has run (first use inside a recipe).
PKG_CFLAGS  = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS    = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
TEST_CFLAGS = $(eval TEST_CFLAGS := $(shell pkg-config --cflags $(TEST_PKGS)))$(TEST_CFLAGS)
TEST_LIBS   = $(eval TEST_LIBS := $(shell pkg-config --libs $(TEST_PKGS)))$(TEST_LIBS)

CPPFLAGS := -D_POSIX_C_SOURCE=200809L -Ilib
CFLAGS   := -std=c11 $(OPT) $(WARN) -fopenmp -MMD -MP
# oneDNN (Debian libdnnl-dev) ships no pkg-config file: its header is <oneapi/dnnl/dnnl.h> and
# its library -ldnnl in the default search paths.
LDLIBS    = $(PKG_LIBS) -ldnnl -fopenmp -lm

LIB_SRCS    ?= $(sort $(shell find lib -name '*.c'))
RUNNER_SRCS ?= $(sort $(wildcard runner/*.c))
TEST_SRCS   ?= $(sort $(wildcard tests/*.c))
BENCH_SRCS  ?= $(sort $(wildcard bench/*.c))

LIB_OBJS    := $(LIB_SRCS:%.c=$(B)/%.o)
RUNNER_OBJS := $(RUNNER_SRCS:%.c=$(B)/%.o)
TEST_OBJS   := $(TEST_SRCS:%.c=$(B)/%.o)
BENCH_OBJS  := $(BENCH_SRCS:%.c=$(B)/%.o)
DEPS := $(LIB_OBJS:.o=.d) $(RUNNER_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(BENCH_OBJS:.o=.d)

LIB       := $(B)/libevograd.a
EVOGRAD   := $(B)/evograd
TESTS_BIN := $(B)/evograd-tests
BENCH_BIN := $(B)/evograd-bench
STAMP     := $(BUILD)/.deps-ok

.PHONY: all run plots test test-slurm test-install dist install uninstall bench bench-peer \
        valgrind fuzz format clean deps
all: $(EVOGRAD)
	@ln -sf $(VARIANT)/evograd $(BUILD)/evograd

# Installs (or names) missing packages once; delete build/ to check again.
$(STAMP): .ci/ensure-deps
	@bash .ci/ensure-deps
	@mkdir -p $(@D) && touch $@
deps: $(STAMP)

$(B)/%.o: %.c | $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(B)/tests/%.o: tests/%.c | $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(EVOGRAD): $(RUNNER_OBJS) $(LIB)
	$(CC) $(SANLD) -o $@ $^ $(LDLIBS)

$(TESTS_BIN): $(TEST_OBJS) $(LIB)
	$(CC) $(SANLD) -o $@ $^ $(TEST_LIBS) $(LDLIBS)

$(BENCH_BIN): $(BENCH_OBJS) $(LIB)
	$(CC) $(SANLD) -o $@ $^ $(LDLIBS) -ldl

# How long idle threads spin (see lib/core/parallel.h); programs set this themselves.
export GOMP_SPINCOUNT ?= 1000
export OPENBLAS_THREAD_TIMEOUT ?= 10

# Without CONFIG or ARGS: the demo (runner/demo.sh: EvoGrad against the baseline, under
# results/demo-toy1d/ and results/demo-rotation/, with its tables, figures and next steps;
# DEMO_EPOCHS rotation epochs). With either: that one run (CONFIG defaults to
# configs/default.yaml), then its plot; the last lines say where both are.
DEMO_EPOCHS ?= 3
run: all
ifeq ($(origin CONFIG)$(origin ARGS),undefinedundefined)
	@PLOT_FORMAT=$(PLOT_FORMAT) bash runner/demo.sh $(BUILD)/evograd $(DEMO_EPOCHS)
else
	@run=$$($(B)/evograd run $(or $(CONFIG),configs/default.yaml) $(ARGS)) && \
	    gnuplot -e "run='$$run'" plots/train.gp && \
	    echo "results: $$run/ (metrics.csv, summary.csv, config.yaml)" && \
	    echo "plot:    $$run/train.png"
endif

# The plot scripts' settings (plots/output.gp): the file format, titles, and the binary whose
# `evograd table` reads the runs tables. has_task: whether folder $$d's runs.csv has rows of task $(1).
PLOT_FORMAT ?= png
PLOT_TITLES ?= 1
GNUPLOT = gnuplot -e "format='$(PLOT_FORMAT)'; evograd='$(EVOGRAD)'" \
    $(if $(filter 0,$(PLOT_TITLES)),-e "notitle=1")
has_task = "$(EVOGRAD)" table "$$d" --where task=$(1) --metric dir >/dev/null 2>&1
# Per results folder with runs of task $(1): plots/$(1).gp (the figures $(2), in $(PLOT_FORMAT))
# and plots/$(1)_table.sh (<task>_table.{md,csv}).
task_plots = for d in results/*/; do \
	    $(call has_task,$(1)) || continue; \
	    $(GNUPLOT) -e "folder='$${d%/}'" plots/$(1).gp && n=$$((n + $(words $(2)))) && \
	    for b in $(2); do echo "$${d}$$b.$$f"; done; \
	    EVOGRAD=$(EVOGRAD) bash plots/$(1)_table.sh "$${d%/}" >/dev/null && \
	    echo "$${d}$(1)_table.md"; \
	done

plots: all
	@f=$(PLOT_FORMAT); n=0; for m in results/*/*/metrics.csv; do \
	    [ -f "$$m" ] || continue; \
	    grep -qs '^task: lft$$' "$$(dirname "$$m")/config.yaml" && continue; \
	    $(GNUPLOT) -e "run='$$(dirname "$$m")'" plots/train.gp && n=$$((n + 1)) && \
	    echo "$$(dirname "$$m")/train.$$f"; \
	done; \
	for d in results/*/; do \
	    ls "$$d"*/hypergrad.csv >/dev/null 2>&1 || continue; \
	    $(GNUPLOT) -e "folder='$${d%/}'" plots/toy1d.gp && n=$$((n + 2)); \
	done; \
	$(call task_plots,rotation,rotation_angle); \
	$(call task_plots,mwn,mwn_accuracy mwn_weights mwn_curve); \
	$(call task_plots,lft,lft_val lft_train lft_ft); \
	for d in results/*/; do \
	    ls "$$d"*/hypergrad_diag.csv >/dev/null 2>&1 || continue; \
	    $(GNUPLOT) -e "folder='$${d%/}'" plots/diagnostics.gp && n=$$((n + 1)) && \
	    echo "$${d}diag_cosine.$$f"; \
	done; \
	for d in results/*/; do \
	    [ -f "$${d}runs.csv" ] || continue; \
	    s=$$(FORMAT=$$f EVOGRAD=$(EVOGRAD) $(if $(filter 0,$(PLOT_TITLES)),NOTITLE=1) \
	        bash plots/sweep.sh "$${d%/}" --all) || true; \
	    [ -z "$$s" ] || { echo "$$s"; n=$$((n + $$(echo "$$s" | wc -l))); }; \
	done; echo "$$n plots written"

# ---------------------------------------------------------------------------------------------
# The installed library and command: make install [PREFIX=/usr/local] [DESTDIR=staging root]
#   $(BINDIR)/evograd, $(LIBDIR)/libevograd.a and libevograd.so.$(VERSION) (soname
#   libevograd.so.$(SOVERSION), and the libevograd.so link), $(INCLUDEDIR)/evograd/*.h (the
#   public API, lib/evograd/), $(LIBDIR)/pkgconfig/evograd.pc, $(MANDIR)/man1/evograd.1 (made by
#   runner/man.sh from the installed binary's own --help and list texts) and the bash
#   completion. Both libraries export only the functions the public headers declare (all
#   eg_-prefixed): the shared one through a version script, the static one as one object whose
#   other symbols are made local. make uninstall removes exactly these files.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
VERSION   := $(shell sed -n 's/^\#define EVOGRAD_VERSION "\(.*\)"$$/\1/p' lib/evograd/evograd.h)
SOVERSION := $(word 1,$(subst ., ,$(VERSION))).$(word 2,$(subst ., ,$(VERSION)))
PUBLIC_HEADERS := lib/evograd/evograd.h lib/evograd/status.h
DIST      := $(B)/dist
PIC_OBJS  := $(LIB_SRCS:%.c=$(B)/pic/%.o)
SHLIB     := $(DIST)/libevograd.so.$(VERSION)
STLIB     := $(DIST)/libevograd.a

$(B)/pic/%.o: %.c | $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC $(PKG_CFLAGS) -c $< -o $@

# The exported symbols: every eg_ function the public headers declare.
$(DIST)/evograd.syms: $(PUBLIC_HEADERS)
	@mkdir -p $(@D)
	grep -ho '\beg_[a-z0-9_]*(' $^ | tr -d '(' | sort -u >$@
$(DIST)/evograd.map: $(DIST)/evograd.syms
	{ echo '{'; echo '  global:'; sed 's/.*/    &;/' $<; echo '  local: *;'; echo '};'; } >$@

$(SHLIB): $(PIC_OBJS) $(DIST)/evograd.map
	$(CC) -shared -Wl,-soname,libevograd.so.$(SOVERSION) -Wl,--version-script=$(DIST)/evograd.map \
	    -Wl,--no-undefined -o $@ $(PIC_OBJS) $(LDLIBS)

$(STLIB): $(PIC_OBJS) $(DIST)/evograd.syms
	@rm -f $@ $(DIST)/evograd.o
	$(LD) -r -o $(DIST)/evograd.o $(PIC_OBJS)
	objcopy --keep-global-symbols=$(DIST)/evograd.syms $(DIST)/evograd.o
	$(AR) rcs $@ $(DIST)/evograd.o

$(DIST)/evograd.1: $(EVOGRAD) runner/man.sh
	bash runner/man.sh $(EVOGRAD) >$@.tmp && mv $@.tmp $@

dist: $(EVOGRAD) $(SHLIB) $(STLIB) $(DIST)/evograd.1

INSTALLED := $(BINDIR)/evograd $(LIBDIR)/libevograd.a $(LIBDIR)/libevograd.so.$(VERSION) \
    $(LIBDIR)/libevograd.so.$(SOVERSION) $(LIBDIR)/libevograd.so \
    $(addprefix $(INCLUDEDIR)/evograd/,$(notdir $(PUBLIC_HEADERS))) \
    $(LIBDIR)/pkgconfig/evograd.pc $(MANDIR)/man1/evograd.1 $(BASHCOMPDIR)/evograd

install: dist
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/evograd \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(EVOGRAD) $(DESTDIR)$(BINDIR)/evograd
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/libevograd.a
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/libevograd.so.$(VERSION)
	ln -sf libevograd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libevograd.so.$(SOVERSION)
	ln -sf libevograd.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libevograd.so
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/evograd/
	{ echo 'prefix=$(PREFIX)'; echo 'libdir=$(LIBDIR)'; echo 'includedir=$(INCLUDEDIR)'; echo; \
	  echo 'Name: evograd'; \
	  echo 'Description: EvoGrad hypergradients, backbones, datasets and experiment runs'; \
	  echo 'Version: $(VERSION)'; echo 'Requires.private: $(PKGS)'; \
	  echo 'Cflags: -I$${includedir}'; echo 'Libs: -L$${libdir} -levograd'; \
	  echo 'Libs.private: -ldnnl -fopenmp -lm'; } >$(DESTDIR)$(LIBDIR)/pkgconfig/evograd.pc
	install -m 644 $(DIST)/evograd.1 $(DESTDIR)$(MANDIR)/man1/evograd.1
	install -m 644 runner/evograd.bash-completion $(DESTDIR)$(BASHCOMPDIR)/evograd
	@# the loader's cache learns the new soname (a real install as root; not when staging)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/evograd 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

# The installed library as a user meets it (tests/install.sh): make install into a scratch
# prefix, the exported symbols, examples/ built with pkg-config against it (shared and static)
# and run, the man page, the completion, then make uninstall. CI runs it.
test-install: $(EVOGRAD)
	bash tests/install.sh

# The suite must really run: Criterion exits 0 on zero tests, so the synthesis line is checked.
test: $(TESTS_BIN) $(EVOGRAD)
	@bash tests/layers.sh
	@cd tests && EVOGRAD_BIN=$(abspath $(EVOGRAD)) ../$(TESTS_BIN) $(TESTFLAGS) 2>&1 \
	    | tee ../$(B)/test.log
	@grep -Eq 'Synthesis: Tested: [1-9][0-9]* \| Passing: [0-9]+ \| Failing: 0 \| Crashing: 0' \
	    $(B)/test.log || { echo "make test: the suite did not run clean (see $(B)/test.log)"; exit 1; }

# The job arrays of evograd sweep --slurm on a real Slurm (tests/slurm.sh; a cluster must take
# jobs: as root, bash .ci/slurm-up brings up a one-node one on this machine). CI runs it.
test-slurm: $(EVOGRAD)
	bash tests/slurm.sh $(EVOGRAD)

bench: $(BENCH_BIN)
	$(BENCH_BIN) $(BENCHFLAGS)

# Ours against PyTorch (Debian's python3-torch) on the same steps: bench/peer.sh, interleaved
# rounds; PEERFLAGS="--rounds 5 --threads '1 2' --cases 'resnet32 mwn'" etc.
bench-peer: $(BENCH_BIN)
	EVOGRAD_BENCH=$(abspath $(BENCH_BIN)) bash bench/peer.sh $(PEERFLAGS)

valgrind: $(TESTS_BIN) $(EVOGRAD)
	cd tests && EVOGRAD_BIN=$(abspath $(EVOGRAD)) OPENBLAS_NUM_THREADS=1 valgrind --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite --trace-children=yes --quiet \
	    ../$(TESTS_BIN) --jobs=1 $(TESTFLAGS)

# libFuzzer harness for the config loader (needs clang-14 and libclang-rt-14-dev, installed here
# on first use). -fno-sanitize-recover makes UBSan findings stop the fuzzer.
FUZZ_CC   ?= clang-14
FUZZ_BIN  := $(BUILD)/fuzz/fuzz_config
FUZZ_SRCS := fuzz/fuzz_config.c lib/io/config.c lib/core/status.c lib/core/alloc.c
FUZZ_TIME ?= 180

$(FUZZ_BIN): $(FUZZ_SRCS) lib/io/config.h lib/core/status.h lib/core/alloc.h | $(STAMP)
	@command -v $(FUZZ_CC) >/dev/null && [ -n "$$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || \
	    { [ "$$(id -u)" -eq 0 ] && apt-get install -y --no-install-recommends clang-14 libclang-rt-14-dev >&2; } || \
	    { echo "make fuzz: install clang-14 libclang-rt-14-dev (apt-get install --no-install-recommends clang-14 libclang-rt-14-dev)"; exit 1; }
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(CPPFLAGS) $$(pkg-config --cflags yaml-0.1) $(FUZZ_SRCS) $$(pkg-config --libs yaml-0.1) -lm -o $@

fuzz: $(FUZZ_BIN)
	@mkdir -p $(BUILD)/fuzz/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_TIME) -max_len=4096 -artifact_prefix=$(BUILD)/fuzz/ \
	    $(BUILD)/fuzz/corpus fuzz/corpus

format:
	clang-format -i $(LIB_SRCS) $(RUNNER_SRCS) $(TEST_SRCS) $(BENCH_SRCS) \
	    $(shell find lib runner tests bench -name '*.h')

clean:
	rm -rf $(BUILD)

-include $(DEPS) $(PIC_OBJS:.o=.d)
