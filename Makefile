# mod_fastcgi — build, install, demo and test.
#
#   make            build mod_fastcgi.so (release)
#   make install    install it into `apxs -q LIBEXECDIR` + Debian mods-available
#   make demo       build, start Apache on 127.0.0.1 with an example app, print the URL
#   make test       install what is missing, build, run every test under all three MPMs
#   make deb        build libapache2-mod-fastcgi_<version>_<arch>.deb (docs/packaging.md)
#
# Set APXS / APR_CONFIG to use another httpd build.

SHELL := /bin/bash
CARGO ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
APXS ?= apxs
MPMS ?= prefork worker event
TEST_THREADS ?= 4

.PHONY: all build deps deps-test deps-deb deb install uninstall demo test unit-test integration-test clippy clean

all: mod_fastcgi.so

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

deps-deb:
	@scripts/deps.sh deb

# Cached: rebuilt only when an input changed (DEB_FORCE=1 to rebuild anyway).
deb: deps-deb
	@CARGO=$(CARGO) scripts/deb.sh

mod_fastcgi.so: deps FORCE
	$(CARGO) build --release --lib
	cp -f target/release/libmod_fastcgi.so mod_fastcgi.so
	chmod 0755 mod_fastcgi.so

FORCE:

build: mod_fastcgi.so

install: mod_fastcgi.so
	install -d "$(DESTDIR)$$($(APXS) -q LIBEXECDIR)"
	install -m 0644 mod_fastcgi.so "$(DESTDIR)$$($(APXS) -q LIBEXECDIR)/mod_fastcgi.so"
	@if [ -d "$(DESTDIR)/etc/apache2/mods-available" ] || [ -d /etc/apache2/mods-available ]; then \
	  install -d "$(DESTDIR)/etc/apache2/mods-available"; \
	  sed "s#@LIBEXECDIR@#$$($(APXS) -q LIBEXECDIR)#" apxs/fastcgi.load > "$(DESTDIR)/etc/apache2/mods-available/fastcgi.load"; \
	  install -m 0644 apxs/fastcgi.conf "$(DESTDIR)/etc/apache2/mods-available/fastcgi.conf"; \
	  echo "installed; enable with: a2enmod fastcgi"; \
	fi

uninstall:
	rm -f "$(DESTDIR)$$($(APXS) -q LIBEXECDIR)/mod_fastcgi.so" \
	      "$(DESTDIR)/etc/apache2/mods-available/fastcgi.load" \
	      "$(DESTDIR)/etc/apache2/mods-available/fastcgi.conf"

demo: deps-test mod_fastcgi.so
	@scripts/demo.sh

unit-test: deps
	$(CARGO) test --release --lib
	$(CARGO) test --release --doc httpd

integration-test: deps-test mod_fastcgi.so
	@set -e; for mpm in $(MPMS); do \
	  echo "=== integration tests, MPM $$mpm ==="; \
	  FCGI_TEST_MPM=$$mpm MOD_FASTCGI_SO=$(CURDIR)/mod_fastcgi.so \
	    $(CARGO) test --release --test '*' -- --test-threads=$(TEST_THREADS); \
	done

# Everything: unit tests once, integration tests under each MPM, one
# closing line with the totals.
test: deps-test deps-deb mod_fastcgi.so
	@CARGO=$(CARGO) MPMS="$(MPMS)" TEST_THREADS=$(TEST_THREADS) scripts/run-tests.sh

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -f mod_fastcgi.so libapache2-mod-fastcgi*.deb
.PHONY: bench
bench:  # as root; BENCH_ARGS=--quick for a smoke test (see bench/README.md)
	@bench/run $(BENCH_ARGS)

# The soak (RELIABILITY.md, issue 12): an hour of mixed traffic with graceful restarts,
# sampling memory, descriptors and processes; fails on an upward trend. Not part of
# `make test`.  make soak SOAK_SECONDS=3600 MPMS="event prefork"
SOAK_SECONDS ?= 3600
.PHONY: soak
soak: deps-test mod_fastcgi.so
	@for mpm in $(MPMS); do \
	  echo "=== soak, MPM $$mpm, $(SOAK_SECONDS) s ==="; \
	  FCGI_TEST_MPM=$$mpm MOD_FASTCGI_SO=$(CURDIR)/mod_fastcgi.so SOAK_SECONDS=$(SOAK_SECONDS) \
	    $(CARGO) test --release --test soak -- --ignored --nocapture || exit 1; \
	done

# Fuzzing (RELIABILITY.md). Not part of `make test`. Both install cargo-fuzz when
# missing and need the nightly toolchain (`rustup toolchain install nightly`).
#   make fuzz-smoke                      every target FUZZ_SMOKE_SECONDS (30, at most 60) each
#   make fuzz FUZZ_SECONDS=3600          every target in turn, FUZZ_SECONDS each
#   make fuzz FUZZ_TARGET=exchange       one target
FUZZ_SMOKE_SECONDS ?= 30
FUZZ_SECONDS ?= 3600
FUZZ_TARGET ?=
.PHONY: fuzz fuzz-smoke
fuzz-smoke:
	@if [ "$(FUZZ_SMOKE_SECONDS)" -gt 60 ]; then echo "FUZZ_SMOKE_SECONDS is at most 60 (use make fuzz)"; exit 2; fi
	CARGO=$(CARGO) fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

fuzz:
	CARGO=$(CARGO) fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGET)
