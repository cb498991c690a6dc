# kshift: kernel-level traffic shifting. `make help` lists the targets.
#
# Everything is built out of tree under build/. BPF objects are compiled with
# clang -target bpf against a vmlinux.h made from the running kernel's BTF,
# and turned into skeletons that the userspace objects include.

OUT       := build
# SANITIZE=1: userspace (not BPF) under ASan and UBSan, built apart
ifeq ($(SANITIZE),1)
OUT       := build-san
endif
CLANG     ?= clang
CC        ?= gcc
BPFTOOL   ?= bpftool
ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

# CFLAGS is the user's (make CFLAGS=...); what the build needs is added with
# override, so a command-line CFLAGS cannot drop the include paths.
CFLAGS    ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	     -Iinclude -Iuser -I$(OUT) -D_GNU_SOURCE
LDLIBS    := -Wl,--as-needed -lbpf -lelf -lz -lyaml -ljson-c -lcurl -lmicrohttpd -lpthread
# One version for kshiftd, kshiftctl, /metrics and the API client's User-Agent:
# the VERSION file, and the commit when built from a git checkout
KSHIFT_VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)$(shell \
	git describe --always --dirty 2>/dev/null | sed 's/^/+g/')
override CFLAGS += -DKSHIFT_VERSION='"$(KSHIFT_VERSION)"'
ifeq ($(SANITIZE),1)
override CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
# FUZZER=1: the library instrumented for libFuzzer (what `make fuzz` builds)
ifeq ($(FUZZER),1)
override CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	     -fno-omit-frame-pointer -Wno-error # gcc's -Werror is the one that holds
endif
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Wextra -Werror \
	     -Wno-unused-parameter -Iinclude -Ibpf -I$(OUT)

BPF_PROGS := kshift bench kshift_sock
BPF_OBJS  := $(patsubst %,$(OUT)/%.bpf.o,$(BPF_PROGS))
SKELS     := $(patsubst %,$(OUT)/%.skel.h,$(BPF_PROGS))
BPF_HDRS  := $(wildcard bpf/lib/*.h) $(wildcard include/kshift/*.h)

LIB_SRCS  := $(wildcard user/lib/*.c)
LIB_OBJS  := $(patsubst user/lib/%.c,$(OUT)/lib/%.o,$(LIB_SRCS))
LIB_HDRS  := $(wildcard user/lib/*.h) $(wildcard include/kshift/*.h)
LIB       := $(OUT)/libkshift.a

BINS      := $(OUT)/kshiftd $(OUT)/kshiftctl
UNIT_TESTS := $(patsubst tests/unit/%.c,$(OUT)/tests/%,$(wildcard tests/unit/test_*.c))
PKT_TESTS  := $(patsubst tests/pkt/%.c,$(OUT)/tests/%,$(wildcard tests/pkt/test_*.c))
PKT_HELPERS := $(filter-out tests/pkt/test_%.c,$(wildcard tests/pkt/*.c))
TOOLS     := $(patsubst tools/%.c,$(OUT)/%,$(wildcard tools/*.c))
# libFuzzer harnesses, built by clang into FUZZ_OUT; `make fuzz` runs each
# for FUZZ_SECONDS from its corpus in tests/fuzz/corpus/<harness>/
FUZZ_OUT  ?= build-fuzzer
FUZZ_SECONDS ?= 600
FUZZERS   := $(patsubst tests/fuzz/%.c,$(OUT)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

ifeq ($(V),1)
Q :=
else
Q := @
endif

.DELETE_ON_ERROR:
.SECONDARY: $(BPF_OBJS) $(SKELS) $(OUT)/vmlinux.h
.PHONY: all deps help test test-unit test-pkt test-e2e demo bench bench-quick bench-prog bench-k8s \
	clean format fuzz fuzz-build

all: deps-if-missing $(BINS) $(OUT)/kubectl-kshift $(UNIT_TESTS) $(PKT_TESTS) $(TOOLS)

help:
	@echo "make              build BPF objects, skeletons, kshiftd, kshiftctl and tests"
	@echo "make deps         install the Debian packages needed (as root)"
	@echo "make test         run every suite: unit, packet (BPF_PROG_TEST_RUN), end to end"
	@echo "make test-unit    unit tests only (no root needed)"
	@echo "make test-pkt     packet tests only (root)"
	@echo "make test-e2e     end-to-end tests in network namespaces (root)"
	@echo "make demo         canary and blue/green on a throwaway test network (root)"
	@echo "make bench        kshift against iptables, nftables and plain forwarding (root)"
	@echo "make bench-quick  the same, shorter (under 5 minutes)"
	@echo "make bench-k8s    kshiftd --kubernetes: patch-to-dataplane time, RSS and CPU under"
	@echo "                  endpoint churn, with SERVICES=N (default 10000) (root)"
	@echo "make bench-prog   ns per packet of kshift's paths with BPF_PROG_TEST_RUN (root)"
	@echo "make fuzz         libFuzzer harnesses (manifest, Kubernetes objects), FUZZ_SECONDS"
	@echo "                  each (default 600), and 1,000,000 fuzzed packets (root)"
	@echo "make test SANITIZE=1  unit and packet tests under ASan and UBSan, in build-san/"
	@echo "make format       clang-format every C source"
	@echo "make clean        remove build/"
	@echo "V=1 shows the commands."

deps:
	$(Q)scripts/deps.sh

.PHONY: deps-if-missing
deps-if-missing:
	$(Q)scripts/deps.sh --if-missing

$(OUT) $(OUT)/lib $(OUT)/tests:
	$(Q)mkdir -p $@

$(OUT)/vmlinux.h: | $(OUT) deps-if-missing
	@echo "  GEN     $@"
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(OUT)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(OUT)/vmlinux.h | $(OUT)
	@echo "  BPF     $@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	@echo "  SKEL    $@"
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

$(OUT)/lib/%.o: user/lib/%.c $(LIB_HDRS) $(SKELS) | $(OUT)/lib
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)$(AR) rcs $@ $^

$(OUT)/%: user/%.c $(LIB) $(LIB_HDRS) $(SKELS)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(OUT)/kubectl-kshift: $(OUT)/kshiftctl
	$(Q)ln -sf kshiftctl $@

$(OUT)/%: tools/%.c $(LIB) $(SKELS)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -lm -o $@

$(OUT)/tests/%: tests/unit/%.c $(LIB) $(LIB_HDRS) | $(OUT)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -lcmocka -o $@

$(OUT)/tests/%: tests/pkt/%.c $(PKT_HELPERS) $(wildcard tests/pkt/*.h) $(LIB) $(SKELS) | $(OUT)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -Itests/pkt $< $(PKT_HELPERS) $(LIB) $(LDLIBS) -lcmocka -o $@

$(OUT)/fuzz:
	$(Q)mkdir -p $@

$(OUT)/fuzz/%: tests/fuzz/%.c $(LIB) $(LIB_HDRS) | $(OUT)/fuzz
	@echo "  FUZZ    $@"
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer $< $(LIB) $(LDLIBS) -o $@

# the harnesses, by a make of their own: another compiler, another OUT
fuzz-build: deps-if-missing
	$(Q)$(MAKE) --no-print-directory OUT=$(FUZZ_OUT) CC=$(CLANG) FUZZER=1 SANITIZE= fuzz-bins

.PHONY: fuzz-bins
fuzz-bins: $(FUZZERS)

fuzz: all fuzz-build
	$(Q)KS_BUILD=$(OUT) KS_FUZZ_OUT=$(FUZZ_OUT) tests/fuzz/run.sh $(FUZZ_SECONDS)
	$(Q)$(OUT)/tests/test_pkt_fuzz 1000000

test: all $(if $(filter 1,$(SANITIZE)),,fuzz-build)
	$(Q)KS_BUILD=$(OUT) KS_FUZZ_OUT=$(FUZZ_OUT) tests/run.sh \
		$(if $(filter 1,$(SANITIZE)),unit pkt,all)

test-unit: all
	$(Q)tests/run.sh unit

test-pkt: all
	$(Q)tests/run.sh pkt

test-e2e: all
	$(Q)tests/run.sh e2e

demo: all
	$(Q)scripts/demo.sh

bench: all
	$(Q)KS_BUILD=$(OUT) scripts/bench.sh

bench-quick: all
	$(Q)KS_BUILD=$(OUT) scripts/bench.sh --quick

bench-k8s: all
	$(Q)scripts/bench-k8s.sh $(SERVICES)

bench-prog: all
	$(Q)$(OUT)/bench-prog
	$(Q)KS_BUILD=$(OUT) scripts/bench-set.sh 200 1

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	$(Q)rm -rf $(OUT)
