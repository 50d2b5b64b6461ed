# dlpgate build. `make` builds build/dlpgate; `make test` runs every suite;
# `make asan` / `make asan-test` do the same under ASan+UBSan; `make fuzz`
# builds the libFuzzer targets; `make run` starts the product on its defaults.
#
# Every object goes under $(BUILD) so the normal, sanitizer and fuzz builds
# never mix. llhttp comes from Debian's node-llhttp (sources, not a library)
# and is compiled here without our warning flags: it is not our code.
#
# Two passes. On a bare machine neither pkg-config nor the libraries exist
# yet, so nothing below may ask pkg-config (or even read a .d file) until
# scripts/deps.sh has run. The outer pass therefore only installs what the
# goals need and then runs this Makefile again with DLPGATE_DEPS=done; that
# inner pass holds every real rule. A recursive make (not a prerequisite)
# is what orders deps before every compile under -jN too: a prerequisite
# only orders the targets that name it, and pkg-config would already have
# been asked while the Makefile was read.

ifneq ($(DLPGATE_DEPS),done)

GOALS := $(or $(MAKECMDGOALS),all)
# What each goal needs installed: `run` only what builds and runs the
# product, the test and sanitizer goals the test peers too, clean nothing.
# (deps alone installs everything.)
TEST_GOALS := test unit asan% tsan% fuzz% build-fuzz/% %-tests %/flowclient %/spoolfill %/console-load %/policy-poll deps \
              macos-check
DEPS_SET := $(strip $(if $(filter $(TEST_GOALS),$(GOALS)),test,\
                $(if $(filter deb,$(GOALS)),deb,\
                $(if $(filter run,$(GOALS)),run,\
                $(if $(filter-out clean,$(GOALS)),build)))))

.PHONY: $(GOALS) dlpgate-outer
# Every goal waits for the one outer recipe, so `make -j2 all test` still
# runs the installer once.
$(GOALS): dlpgate-outer ; @:
dlpgate-outer:
	$(if $(DEPS_SET),@scripts/deps.sh $(DEPS_SET))
	@$(MAKE) --no-print-directory DLPGATE_DEPS=done $(GOALS)

else

BUILD   ?= build
# Quiet by default; `make V=1` shows every command.
Q       := $(if $(V),,@)
CC      ?= gcc
OPT     ?= -O2
SAN     ?=
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

PKGS    := libuv openssl jansson libpcre2-8 lua5.4 zlib libbrotlidec libbrotlienc libzstd libcurl
# Asked once per pass: this is the inner pass, the deps are installed.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -g $(OPT) $(SAN) -pthread -fno-strict-aliasing \
               -DDLPGATE_VERSION='"$(VERSION)"' -Iengine -I$(LLHTTP_INC)
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wvla \
           -Wformat=2 -Wno-format-nonliteral
CFLAGS  := $(CFLAGS_BASE) $(WARN) $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lm

ENGINE_SRC := $(filter-out engine/main.c,$(sort $(wildcard engine/*.c engine/*/*.c)))
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o)
LLHTTP_OBJ := $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o $(BUILD)/obj/llhttp/llhttp.o
LIB        := $(BUILD)/libdlpgate.a
# Objects first, the library last: a static library only serves symbols
# that objects before it asked for (the console's objects join some links
# as extra prerequisites, after the library).
LINK_INPUTS = $(filter-out $(LIB),$^) $(LIB)
# The Lua half of the runtime (lua/*.lua) is compiled into the binary, so a
# deployed dlpgate needs no file besides the policy.
LUA_SRC    := $(sort $(wildcard lua/*.lua))
LUA_EMBED  := $(BUILD)/obj/gen/lua_embed.o

UNIT_SRC    := $(sort $(wildcard tests/unit/*.c))
INTEG_SRC   := $(sort $(wildcard tests/integration/*.c))
HARNESS_SRC := $(sort $(wildcard tests/harness/*.c))
# check is a test peer: asked only when a test object is built.
TEST_CFLAGS  = $(CFLAGS) -Itests $(shell pkg-config --cflags check)
TEST_LIBS    = $(shell pkg-config --libs check)

.PHONY: all deps test unit integration asan asan-test tsan tsan-test fuzz fuzz-smoke macos-check run deb clean
all: $(BUILD)/dlpgate

# The outer pass installed them.
deps:

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_BASE) -w -c $< -o $@

$(BUILD)/gen/lua_embed.c: $(LUA_SRC)
	@mkdir -p $(dir $@)
	$(Q)for f in $(LUA_SRC); do xxd -i $$f; done > $@.tmp && mv $@.tmp $@

$(LUA_EMBED): $(BUILD)/gen/lua_embed.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_BASE) -w -c $< -o $@

$(LIB): $(ENGINE_OBJ) $(LLHTTP_OBJ) $(LUA_EMBED)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/dlpgate: $(BUILD)/obj/engine/main.o $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/unit-tests: $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%.o) $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $(LINK_INPUTS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/integration-tests: $(INTEG_SRC:tests/%.c=$(BUILD)/tests/%.o) $(HARNESS_SRC:tests/%.c=$(BUILD)/tests/%.o) $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $(LINK_INPUTS) $(TEST_LIBS) $(LDLIBS)

# Plays the macOS system extension on Linux (tests and the benchmark).
$(BUILD)/flowclient: $(BUILD)/tests/tools/flowclient.o $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Fills an agent's spool with an outage's worth of events (tests/bench/backlog.sh).
$(BUILD)/spoolfill: $(BUILD)/tests/bench/spoolfill.o $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The test command of the README and of CI. Suites print Check's summary lines.
test: $(BUILD)/dlpgate $(BUILD)/unit-tests $(BUILD)/integration-tests $(BUILD)/flowclient
	@scripts/run-tests.sh $(BUILD)

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    build-asan/dlpgate build-asan/unit-tests build-asan/integration-tests build-asan/flowclient \
	    build-asan/dlpgate-console build-asan/web/index.html

asan-test: asan
	@scripts/run-tests.sh build-asan

# The engine's threads (workers, policy pool, uploader) under ThreadSanitizer:
# the integration suites, with TSan builds of everything they start. A
# report makes a process exit 66, which the harness fails on. io_sync=2: the
# engine reuses descriptor numbers across threads all the time, and TSan's
# default reads that as a race.
tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread -fno-omit-frame-pointer" \
	    build-tsan/dlpgate build-tsan/integration-tests build-tsan/flowclient build-tsan/dlpgate-console \
	    build-tsan/web/index.html

tsan-test: tsan
	@TSAN_OPTIONS="$${TSAN_OPTIONS:-exitcode=66 io_sync=2 suppressions=$(CURDIR)/tests/tsan.supp}" \
	    scripts/run-tests.sh build-tsan integration-tests

FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT=-O1 \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	         -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION" $(FUZZ_TARGETS)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $(LINK_INPUTS) $(LDLIBS)

# Short libFuzzer runs of every target (CI): FUZZ_SECONDS each.
FUZZ_SECONDS ?= 20
fuzz-smoke: fuzz
	@scripts/fuzz-smoke.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- console: build/dlpgate-console -------------------------------------
# The fleet's server (console/*.c) on the engine's library, plus SQLite and
# libpq. Kept in this one block; `all` and `test` gain it as a prerequisite.
CONSOLE_SRC  := $(sort $(wildcard console/*.c))
CONSOLE_OBJ  := $(CONSOLE_SRC:%.c=$(BUILD)/obj/%.o)
CONSOLE_PKGS := sqlite3 libpq
$(CONSOLE_OBJ): CFLAGS += $(shell pkg-config --cflags $(CONSOLE_PKGS))

$(BUILD)/dlpgate-console: $(CONSOLE_OBJ) $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $(LINK_INPUTS) $(LDLIBS) $(shell pkg-config --libs $(CONSOLE_PKGS))

all: $(BUILD)/dlpgate-console
test: $(BUILD)/dlpgate-console
# The console's pure parsers are unit-tested (tests/unit/test_console_parse.c).
CONSOLE_UNIT_OBJ := $(BUILD)/obj/console/query.o $(BUILD)/obj/console/auth.o $(BUILD)/obj/console/ingest.o \
                    $(BUILD)/obj/console/policy_routes.o $(BUILD)/obj/console/policy_check.o \
                    $(BUILD)/obj/console/session.o $(BUILD)/obj/console/web.o
$(BUILD)/unit-tests: $(CONSOLE_UNIT_OBJ)
# The macOS extension's portable state machines are unit-tested (tests/unit/test_sysext_*.c).
$(BUILD)/unit-tests: $(BUILD)/obj/sysext/extension/flowrelay.o $(BUILD)/obj/sysext/extension/watchdog.o $(BUILD)/obj/sysext/extension/engine_reply.o

# Load for a running console (tests/bench/console_load.c); built on request.
$(BUILD)/console-load: tests/bench/console_load.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(shell pkg-config --cflags --libs libcurl zlib)
# Held long-polls and activation latency (tests/bench/policy_poll.sh); on request.
$(BUILD)/policy-poll: tests/bench/policy_poll.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(shell pkg-config --cflags --libs openssl)
# Its network parsers get a fuzz target like the engine's.
build-fuzz/fuzz_ingest: $(CONSOLE_UNIT_OBJ)
build-fuzz/fuzz_ingest: CFLAGS += -Iconsole
build-fuzz/fuzz_webreq: $(CONSOLE_UNIT_OBJ)
build-fuzz/fuzz_webreq: CFLAGS += -Iconsole
# ---- end console ---------------------------------------------------------

# ---- console web UI: $(BUILD)/web ----------------------------------------
# console/web/src bundled by esbuild (console/web/build.mjs) into hashed
# assets + index.html, which the console serves (--web-root). The npm
# packages are the lockfile's, installed under .deps/web by `npm ci`
# (never global, never committed); Node.js and npm are build dependencies.
WEB_MODULES := .deps/web/node_modules
WEB_SRC     := console/web/build.mjs $(sort $(wildcard console/web/src/*.* console/web/src/*/*.*))
$(WEB_MODULES)/.package-lock.json: console/web/package.json console/web/package-lock.json
	@mkdir -p .deps/web
	$(Q)cp console/web/package.json console/web/package-lock.json .deps/web/
	$(Q)NODE_EXTRA_CA_CERTS=$${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt} \
	    npm ci --prefix .deps/web --no-audit --no-fund --loglevel=error >/dev/null
	$(Q)touch $@

$(BUILD)/web/index.html: $(WEB_SRC) $(WEB_MODULES)/.package-lock.json
	@$(if $(Q),echo "  WEB     $(BUILD)/web")
	$(Q)node console/web/build.mjs $(WEB_MODULES) $(BUILD)/web >/dev/null

all: $(BUILD)/web/index.html
test: $(BUILD)/web/index.html
# ---- end console web UI --------------------------------------------------

# ---- macOS: the engine and the system extension held to Apple's SDK ------
# `make macos-check MACOS_SDK=/path/to/MacOSX.sdk`: every engine source
# compiled for arm64 and x86_64 macOS (scripts/macos-check.sh), then the
# extension and its app compiled and linked (sysext/Makefile's check).
# Without MACOS_SDK each says it skipped. CI has no SDK; a developer fetches one.
MACOS_SDK ?=
macos-check:
	@scripts/macos-check.sh "$(MACOS_SDK)" $(BUILD)/macos-check
	@$(MAKE) --no-print-directory -C sysext check MACOS_SDK="$(MACOS_SDK)"

# `make run ARGS="--upstream-ca FILE ..."` hands ARGS to `dlpgate run`.
run: all
	@scripts/run.sh $(BUILD) $(ARGS)

# Debian packages from packaging/debian (scripts/deb.sh): build/deb/*.deb.
deb:
	@scripts/deb.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(BUILD) build-asan build-tsan build-fuzz -name '*.d' 2>/dev/null)

endif
