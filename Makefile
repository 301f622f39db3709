# Ferry: an XMPP transport (XEP-0114 component) to legacy IM networks through libpurple.
#
#   make            build build/ferry
#   make check      install missing Debian packages, build, run every test (unit, fuzz replay, e2e)
#   make asan       the same tests built with -fsanitize=address,undefined (in build/asan)
#   make fuzz       every fuzz target for FUZZ_SECONDS each (default 60); fails on any finding
#   make bench      benchmarks: they print figures, they never fail
#   make demo       run Ferry for real against a private Prosody and ngircd on loopback
#   make install    PREFIX=/usr/local DESTDIR= (binary, man page, example config)
#   make clean

VERSION := 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
FUZZ_SECONDS ?= 60
CLANG ?= clang
PYTHON := /usr/bin/python3

# Every dependency comes through pkg-config. The variables are recursive and memoised on first
# use so that `make check` on a fresh machine can install the packages before they are asked.
PKGS := expat libcrypto glib-2.0 purple sqlite3 libidn
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)

WERROR := $(if $(CI),-Werror)
SAN ?=
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
FERRY_CFLAGS = -std=c11 -D_GNU_SOURCE -I. $(WARN) $(WERROR) $(SAN) $(PKG_CFLAGS) \
	-DFERRY_VERSION='"$(VERSION)"' -MMD -MP $(CFLAGS)
FERRY_LDLIBS = $(SAN) $(PKG_LIBS) -lpthread

LIB_SRC := $(wildcard lib/*.c)
NATIVE_SRC := $(wildcard native/*.c)
BRIDGE_SRC := $(wildcard bridge/*.c)
TRANSPORT_SRC := $(filter-out transport/main.c,$(wildcard transport/*.c))
CORE_SRC := $(LIB_SRC) $(NATIVE_SRC) $(BRIDGE_SRC) $(TRANSPORT_SRC)
CORE_OBJS := $(CORE_SRC:%.c=$(BUILD)/%.o)
lib_objs = $(addprefix $(BUILD)/lib/,$(addsuffix .o,$(1)))

# ---- unit tests: each binary lists the objects it needs, so one module's tests build alone ----
UNIT_TESTS := test_util test_log test_xml test_xstream test_jid test_config test_mailbox test_crypto test_store test_component test_router test_native test_text test_session test_search test_backoff test_stanza test_pending test_pacer
LIB_BASE := util log
$(BUILD)/tests/test_util: $(call lib_objs,$(LIB_BASE))
$(BUILD)/tests/test_log: $(call lib_objs,$(LIB_BASE))
$(BUILD)/tests/test_xml: $(call lib_objs,$(LIB_BASE) xml)
$(BUILD)/tests/test_xstream: $(call lib_objs,$(LIB_BASE) xml xstream)
$(BUILD)/tests/test_jid: $(call lib_objs,$(LIB_BASE) jid)
$(BUILD)/tests/test_config: $(call lib_objs,$(LIB_BASE) config)
$(BUILD)/tests/test_mailbox: $(call lib_objs,$(LIB_BASE) mailbox)
$(BUILD)/tests/test_stanza: $(call lib_objs,$(LIB_BASE) xml stanza)
$(BUILD)/tests/test_backoff: $(call lib_objs,$(LIB_BASE) backoff)
$(BUILD)/tests/test_pacer: $(BUILD)/native/pacer.o $(call lib_objs,$(LIB_BASE))
$(BUILD)/tests/test_native: $(NATIVE_SRC:%.c=$(BUILD)/%.o) $(call lib_objs,$(LIB_BASE) mailbox)
TRANSPORT_TEST_OBJS := $(addprefix $(BUILD)/transport/,component.o router.o service.o) \
	$(call lib_objs,$(LIB_BASE) xml xstream jid mailbox stanza backoff)
$(BUILD)/tests/test_component: $(TRANSPORT_TEST_OBJS)
$(BUILD)/tests/test_router: $(TRANSPORT_TEST_OBJS)
$(BUILD)/tests/test_pending: $(addprefix $(BUILD)/bridge/,pending.o store.o) $(TRANSPORT_TEST_OBJS) \
	$(call lib_objs,crypto)
$(BUILD)/tests/test_crypto: $(call lib_objs,$(LIB_BASE) crypto)
$(BUILD)/tests/test_store: $(BUILD)/bridge/store.o $(call lib_objs,$(LIB_BASE) crypto)
$(BUILD)/tests/test_text: $(BUILD)/bridge/text.o $(call lib_objs,$(LIB_BASE) xml)
$(BUILD)/tests/test_session: $(addprefix $(BUILD)/bridge/,session.o sessions.o contacts.o text.o store.o search.o vcard.o) \
	$(BUILD)/native/commands.o $(call lib_objs,$(LIB_BASE) xml jid mailbox stanza crypto backoff)
$(BUILD)/tests/test_search: $(addprefix $(BUILD)/bridge/,search.o vcard.o text.o) \
	$(BUILD)/native/commands.o $(call lib_objs,$(LIB_BASE) xml xstream jid stanza)

# ---- fuzz targets (clang, libFuzzer): each lists the sources it is built from ----
FUZZ_TARGETS := fuzz_stream fuzz_jid fuzz_config fuzz_router
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
fuzz_stream_SRC := lib/util.c lib/log.c lib/xml.c lib/xstream.c
fuzz_jid_SRC := lib/util.c lib/log.c lib/jid.c
fuzz_config_SRC := lib/util.c lib/log.c lib/config.c
fuzz_router_SRC := lib/util.c lib/log.c lib/xml.c lib/xstream.c lib/jid.c lib/stanza.c \
	transport/router.c transport/service.c

.PHONY: all deps check check-build check-unit check-fuzz check-e2e asan fuzz bench demo install \
	clean format

all: $(BUILD)/ferry

deps:
	@scripts/deps

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(FERRY_CFLAGS) -c $< -o $@

$(BUILD)/libferry.a: $(CORE_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/ferry: $(BUILD)/transport/main.o $(BUILD)/libferry.a
	$(CC) -o $@ $^ $(FERRY_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FERRY_LDLIBS) -lcmocka

# A fuzz binary is rebuilt when any source it is built from changes.
.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/%.c $$($$*_SRC) $$(wildcard lib/*.h) | deps
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $($*_SRC) $(PKG_LIBS) -lpthread

# ---- make check: everything that fits in a few minutes ----
check: deps
	@rm -f $(BUILD)/results
	$(MAKE) --no-print-directory check-build
	-$(MAKE) --no-print-directory check-unit
	-$(MAKE) --no-print-directory check-fuzz
	-$(MAKE) --no-print-directory check-e2e
	@tests/run summary $(BUILD)/results

check-build: $(BUILD)/ferry $(UNIT_TESTS:%=$(BUILD)/tests/%) $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

# Unit tests run under valgrind (unless sanitized): a leak or a memory error fails the test.
check-unit: $(UNIT_TESTS:%=$(BUILD)/tests/%)
	@tests/run unit $(BUILD)/results $(if $(SAN),,valgrind) $^

check-fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
	@tests/run fuzz-replay $(BUILD)/results $^

check-e2e: $(BUILD)/ferry
	@tests/run e2e $(BUILD)/results $(BUILD)/ferry

# The end-to-end suite with Ferry under valgrind (not part of check: slow). The harness does not
# look at Ferry's exit status, so valgrind writes each Ferry process's report to its own file
# under $(BUILD)/valgrind and any non-empty report fails the target. Absolute paths: Ferry runs
# in its test's directory. VALGRIND_E2E lists the modules (run.py names): every one that starts
# Ferry (test_rig never does). Valgrind runs one thread at a time, and its default lock is not
# fair: the component thread can parse a whole read (hundreds of stanzas) before a session
# thread gets a turn, and overflow its mailbox. --fair-sched=yes (a ticket lock) gives waiting
# threads their turns in order, as a kernel would.
VALGRIND_E2E ?= test_service test_register test_sessions test_link test_cli test_search test_faults test_hostile
VALGRIND_FERRY = valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --suppressions=$(CURDIR)/tests/unit/libpurple.supp \
	--suppressions=$(CURDIR)/tests/valgrind-ferry.supp --num-callers=40 \
	--trace-children=no --fair-sched=yes --log-file=$(CURDIR)/$(BUILD)/valgrind/ferry.%p.log
.PHONY: check-valgrind soak
check-valgrind: deps $(BUILD)/ferry
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind
	@FERRY_BINARY=$(CURDIR)/$(BUILD)/ferry FERRY_E2E_TIMEOUT=300 \
	FERRY_E2E_WRAPPER='$(VALGRIND_FERRY)' $(PYTHON) tests/e2e/run.py $(VALGRIND_E2E); rc=$$?; \
	bad=$$(find $(BUILD)/valgrind -name 'ferry.*.log' -size +0); \
	for f in $$bad; do echo "== valgrind report $$f"; cat $$f; done; \
	echo "valgrind: $$(ls $(BUILD)/valgrind | wc -l) Ferry processes, $$(echo $$bad | wc -w) with errors"; \
	[ $$rc -eq 0 ] && [ -z "$$bad" ]

# Not part of check: 100 owners talk with IRC peers for SOAK_SECONDS; prints counts and RSS
# (split by mapping, with malloc's bytes in use and free: live growth vs fragmentation).
SOAK_SECONDS ?= 600
soak: deps $(BUILD)/ferry
	SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) bench/soak.py --ferry $(BUILD)/ferry --mem

# libpurple is built without frame pointers: the slow unwinder is needed for the suppressions
# (tests/lsan.supp) to see libpurple's own start-up leaks for what they are.
asan: export ASAN_OPTIONS = fast_unwind_on_malloc=0:detect_leaks=1
asan: export LSAN_OPTIONS = suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
asan: export UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1
asan: deps
	$(MAKE) --no-print-directory BUILD=build/asan SAN='-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer' CFLAGS='-O1 -g' check

fuzz: deps $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
	@tests/run fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

$(BUILD)/bench/bench_parse: bench/bench_parse.c $(call lib_objs,$(LIB_BASE) xml xstream)
	@mkdir -p $(dir $@)
	$(CC) $(FERRY_CFLAGS) -o $@ $(filter %.c %.o,$^) $(FERRY_LDLIBS)

bench: deps $(BUILD)/bench/bench_parse $(BUILD)/ferry
	$(BUILD)/bench/bench_parse
	$(PYTHON) bench/e2e.py --ferry $(BUILD)/ferry

demo: deps $(BUILD)/ferry
	@scripts/demo $(BUILD)/ferry

install: $(BUILD)/ferry
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/doc/ferry/examples
	install -m 0755 $(BUILD)/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -m 0644 conf/ferry.conf conf/prosody.cfg.lua conf/ejabberd.yml \
		$(DESTDIR)$(PREFIX)/share/doc/ferry/examples/
	@# The man page and the unit name installed paths: they follow PREFIX.
	sed 's#/usr/local#$(PREFIX)#g' ferry.8 > $(DESTDIR)$(PREFIX)/share/man/man8/ferry.8
	sed 's#/usr/local#$(PREFIX)#g' conf/ferry.service \
		> $(DESTDIR)$(PREFIX)/share/doc/ferry/examples/ferry.service
	chmod 0644 $(DESTDIR)$(PREFIX)/share/man/man8/ferry.8 \
		$(DESTDIR)$(PREFIX)/share/doc/ferry/examples/ferry.service

format:
	clang-format -i $(wildcard */*.c */*.h tests/*/*.c bench/*.c)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
