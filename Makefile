# The front door.  `make` builds build/tether and the library; `make run`
# starts examples/tether.ini in the foreground; `make check` runs every
# test.  On a fresh Debian 12 machine, run as root, it installs what is
# missing; as a normal user it prints the one command to run.

BUILD    ?= build
ASAN     ?= build-asan
WHEEL_BUILD ?= build-wheel
DIST     ?= dist
PREFIX   ?= /usr/local
DESTDIR  ?=
MESON    ?= meson
CONFIG   ?= examples/tether.ini

# Debian packages, by the command or file that shows they are there.
DEPS_BUILD = meson:meson ninja:ninja-build pkg-config:pkg-config gcc:gcc \
	/usr/include/ini.h:libinih-dev /usr/include/cmocka.h:libcmocka-dev \
	/usr/include/hiredis/hiredis.h:libhiredis-dev /usr/include/postgresql/libpq-fe.h:libpq-dev \
	/usr/include/mariadb/mysql.h:libmariadb-dev
DEPS_CHECK = bats:bats tcsh:tcsh dash:dash bash:bash /usr/bin/python3:python3 \
	/usr/bin/curl:curl /usr/bin/redis-server:redis-server /usr/bin/redis-cli:redis-tools \
	/usr/bin/memcached:memcached /usr/lib/postgresql:postgresql /usr/bin/psql:postgresql-client \
	$(PYLIB)/fixtures:python3-fixtures $(PYLIB)/testtools:python3-testtools \
	$(PYLIB)/testresources:python3-testresources $(PYLIB)/pytest:python3-pytest \
	$(PYLIB)/xdist:python3-pytest-xdist /usr/bin/pip3:python3-pip valgrind:valgrind \
	/usr/bin/pkill:procps /usr/sbin/useradd:passwd \
	$(PYLIB)/psycopg2:python3-psycopg2 \
	$(PYLIB)/psycopg:python3-psycopg \
	$(PYLIB)/sqlalchemy:python3-sqlalchemy \
	$(PYLIB)/asyncpg:python3-asyncpg \
	$(PYLIB)/redis:python3-redis \
	$(PYLIB)/pymemcache:python3-pymemcache \
	/usr/bin/memccat:libmemcached-tools \
	$(SERVERS)
# The servers of issue 12's drivers and recipes, and their clients.
SERVERS = /usr/sbin/mariadbd:mariadb-server /usr/bin/mariadb:mariadb-client \
	$(PYLIB)/pymysql:python3-pymysql $(PYLIB)/MySQLdb:python3-mysqldb \
	/usr/lib/rabbitmq/bin/rabbitmq-server:rabbitmq-server $(PYLIB)/pika:python3-pika \
	/usr/bin/etcd:etcd-server /usr/bin/etcdctl:etcd-client $(PYLIB)/etcd3:python3-etcd3 \
	/usr/sbin/nats-server:nats-server \
	/usr/sbin/mosquitto:mosquitto /usr/bin/mosquitto_pub:mosquitto-clients \
	/usr/sbin/slapd:slapd /usr/bin/ldapsearch:ldap-utils /usr/sbin/nginx:nginx-light \
	/usr/sbin/pgbouncer:pgbouncer /usr/share/java/zookeeper.jar:zookeeper \
	/usr/bin/influxd:influxdb /usr/bin/influx:influxdb-client \
	/usr/bin/podman:podman /usr/sbin/runc:runc /usr/bin/catatonit:catatonit \
	/bin/busybox:busybox-static /usr/sbin/dockerd:docker.io
PYLIB      = /usr/lib/python3/dist-packages
# tests/packaging: make deb's tools, the shells whose completions it tries
DEPS_PACKAGES = dpkg-buildpackage:dpkg-dev /usr/bin/dh:debhelper zsh:zsh fish:fish \
	/usr/share/bash-completion/bash_completion:bash-completion
DEPS_RUN   = /usr/bin/python3:python3

.PHONY: all build run check check-packages wheel deb unit unit-asan cli fixtures python deps-build deps-check install bench clean chaos chaos-short \
	valgrind valgrind-short fuzz docs-check graph-check

all: build

# Print or run the apt-get line for whatever is missing.  As root, a
# policy-rc.d that says no keeps the packages' own daemons (mariadb,
# rabbitmq, nginx on port 80...) from starting: tests start their own.
define need
	@missing=""; for d in $(1); do \
		what=$${d%%:*}; pkg=$${d#*:}; \
		case $$what in /*) test -e $$what ;; *) command -v $$what >/dev/null 2>&1 ;; esac \
			|| missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "make: installing$$missing" >&2; \
			policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
				policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' >$$policy; chmod 755 $$policy; \
			fi; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } >&2; \
			rc=$$?; [ -z "$$policy" ] || rm -f "$$policy"; \
			[ $$rc = 0 ] || { echo "make: apt-get install$$missing failed" >&2; exit 1; }; \
		else \
			echo "make: missing Debian packages. Run:" >&2; \
			echo "    sudo apt-get install$$missing" >&2; exit 1; \
		fi; \
	fi
endef

deps-build:
	$(call need,$(DEPS_BUILD))

deps-check: deps-build
	$(call need,$(DEPS_CHECK))

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --prefix=$(PREFIX)

$(ASAN)/build.ninja:
	$(MESON) setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

build: deps-build $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	$(call need,$(DEPS_RUN))
	./$(BUILD)/tether -f $(CONFIG) run

unit: build
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs

unit-asan: deps-build $(ASAN)/build.ninja
	ninja -C $(ASAN)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(MESON) test -C $(ASAN) --suite unit --print-errorlogs

cli: build
	TETHER_BUILD=$(abspath $(BUILD)) bats tests/cli

# libtether (cmocka suite, examples/c, bats) and the Python binding
fixtures: build
	$(MESON) test -C $(BUILD) --suite fixtures --print-errorlogs
	TETHER_BUILD=$(abspath $(BUILD)) bats tests/fixture

# pytest's temporary directories go too (it keeps its last three runs)
python: build
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/tether-pytest.XXXXXX") && \
	TETHER_BUILD=$(abspath $(BUILD)) PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -p no:cacheprovider -q --basetemp="$$tmp/t" tests/python; \
	rc=$$?; rm -rf "$$tmp"; exit $$rc

# The shell examples of README.md and docs/*.md, run as typed, each file's
# in a temporary directory of its own (see tests/docs/run_examples.py for
# how a block is marked ```sh no-test); every config key in the man page
# tether.ini(5) and in docs/config.md
docs-check: build
	@rc=0; /usr/bin/python3 tests/docs/run_examples.py --build $(BUILD) || rc=1; \
	/usr/bin/python3 tests/docs/check_keys.py || rc=1; exit $$rc

# No cycle between the .c files of lib/ and src/ (which file uses which:
# nm on the build's objects), but those tests/tools/filegraph-allow.txt
# lists as being removed; then the checker's own tests (~2 s).  The layers:
# `tests/tools/filegraph.py --layers`, and docs/ARCHITECTURE.md.
graph-check: build
	$(call need,/usr/bin/nm:binutils /usr/bin/python3:python3 $(PYLIB)/pytest:python3-pytest)
	/usr/bin/python3 tests/tools/filegraph.py --build $(BUILD)
	TETHER_BUILD=$(abspath $(BUILD)) PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -p no:cacheprovider -q tests/tools/test_filegraph.py

# Randomised fault injection: `make chaos N=5000 [SEED=...]` for the long
# round; `make check` runs a short one (200 trials, at most 170 s).
N ?= 5000
chaos: build
	/usr/bin/python3 tests/chaos/chaos.py --trials $(N) --seconds $(or $(SECONDS),36000) \
		$(if $(SEED),--seed $(SEED))

chaos-short: build
	/usr/bin/python3 tests/chaos/chaos.py --trials 200 --seconds 170 $(if $(SEED),--seed $(SEED))

# Memcheck over the CLI commands (and the helpers they fork) and the test
# programs: 0 errors, 0 bytes definitely lost.  `make check` runs the short
# one (no postgresql, fuzz corpora or libtether's cmocka suite, ~60 s).
valgrind: build
	$(call need,valgrind:valgrind)
	tests/valgrind.sh $(BUILD)

valgrind-short: build
	$(call need,valgrind:valgrind)
	tests/valgrind.sh --short $(BUILD)

# libFuzzer, with clang: each target for FUZZ_SECONDS, new finds merged
# into tests/fuzz/corpus (commit them); `make check` replays the corpus.
FUZZ_SECONDS ?= 600
fuzz: deps-build
	$(call need,clang:clang)
	tests/fuzz/run.sh $(FUZZ_SECONDS)

# Every suite, then (when run as root, as CI does) the cli, fixtures,
# python and docs-check suites once more as a throwaway user on a copy of the tree; the
# last line counts both rounds.  See tests/check.sh.
check: deps-check
	MAKE="$(MAKE)" tests/check.sh unit graph-check unit-asan cli fixtures python docs-check chaos-short \
		valgrind-short check-packages --as-user cli fixtures python docs-check

# make install into a temporary prefix, make wheel into a fresh venv, make
# deb with dpkg -i (root only: it skips as a user), each tried as a user
# would (~4 min: each builds tether once more)
check-packages: build
	$(call need,$(DEPS_PACKAGES))
	TETHER_BUILD=$(abspath $(BUILD)) bats tests/packaging

install: build
	$(MESON) configure $(BUILD) --prefix=$(PREFIX)
	ninja -C $(BUILD)
	DESTDIR=$(DESTDIR) $(MESON) install -C $(BUILD) --no-rebuild
	@# the dynamic linker's cache must know the new libtether.so.0
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

# A platform wheel whose Python package carries its own tether program,
# linked with inih statically so that it needs nothing but libc (libpq and
# hiredis are loaded at run time, and only by the drivers that use them).
wheel: deps-build
	$(call need,/usr/bin/pip3:python3-pip)
	test -f $(WHEEL_BUILD)/build.ninja || $(MESON) setup $(WHEEL_BUILD) \
		-Dprefer_static=true -Dbuildtype=release -Db_ndebug=true
	ninja -C $(WHEEL_BUILD) tether
	strip -o $(WHEEL_BUILD)/tether.stripped $(WHEEL_BUILD)/tether
	/usr/bin/python3 -m pip wheel -q --no-deps --no-build-isolation --no-index \
		--config-settings binary=$(abspath $(WHEEL_BUILD))/tether.stripped -w $(DIST) ./python
	@ls $(DIST)/tether-*.whl

# A Debian package (debian/), built with dpkg-buildpackage in a copy of the
# tree, so that the build leaves nothing here (nor in ..) but $(DIST)/*.deb.
deb: deps-build
	$(call need,dpkg-buildpackage:dpkg-dev /usr/bin/dh:debhelper)
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/tether-deb.XXXXXX") && mkdir "$$tmp/tether" && \
	{ if git rev-parse --git-dir >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | \
		xargs -0 -r sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
		tar --null -T - -cf -; \
	else tar --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=./$(DIST) -cf - .; fi | \
		tar -C "$$tmp/tether" -xf - && \
	(cd "$$tmp/tether" && DEB_BUILD_OPTIONS="noautodbgsym $$DEB_BUILD_OPTIONS" \
		dpkg-buildpackage -b -us -uc) && \
	mkdir -p $(DIST) && mv "$$tmp"/*.deb $(DIST)/ && ls $(DIST)/*.deb; }; \
	rc=$$?; rm -rf "$$tmp"; exit $$rc

bench: build
	$(call need,hyperfine:hyperfine)
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN) build-fuzz $(WHEEL_BUILD) $(DIST)
