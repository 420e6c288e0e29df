# The two set-up commands of the README: `make demo` and `make test`. Both install what they need
# (Debian packages, Go modules) so they work on a fresh Debian 12 machine with Go.

GO        ?= go
BIN       := openmldb-kafka-proxy
APT_PKGS  := kcat zookeeper python3-confluent-kafka python3-kafka
# An execution count, not a duration: with -fuzztime as a duration, Go 1.26's fuzz coordinator can
# report its own deadline as a failure (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 40000x
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps demo test vet unit fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN) .

# deps installs the system packages the demo and the tests use, only when one is missing.
deps:
	@missing=""; \
	command -v kcat >/dev/null 2>&1 || missing=1; \
	[ -f /usr/share/java/zookeeper.jar ] || missing=1; \
	/usr/bin/python3 -c 'import confluent_kafka, kafka' >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ]; then \
		echo "installing $(APT_PKGS)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PKGS); \
	fi
	$(GO) mod download

demo: deps build
	./$(BIN) demo

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 20m -p 2 ./...

# fuzz runs every Fuzz target for FUZZTIME executions, a few seconds each (the seed corpora also
# run in `unit`).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

test: deps vet unit fuzz

bench: build
	$(GO) run ./e2e/cmd/loadbench

clean:
	rm -f $(BIN)
