# vault-plugin-secrets-vendoroauth
#
#   make dev    build, start Vault and the vendor stand-ins, configure demos, print tokens
#   make test   unit tests (-race), bounded fuzzing, then end-to-end tests in a real Vault

SHELL := /usr/bin/env bash
PLUGIN   := vault-plugin-secrets-vendoroauth
PKG      := github.com/vendoroauth/vault-plugin-secrets-vendoroauth
# Vault checks a registered plugin's version against what the binary
# reports, so it must be semver: the latest v* tag, else a dev version.
# `bin/vault-plugin-secrets-vendoroauth --version` prints the one built in.
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null || echo v0.1.0-dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 10s
GO_TEST  ?= go test

.PHONY: all build dev dev-stop test unit fuzz e2e e2e-cluster bench release fmt lint vet tidy-check clean vault bao tofu prometheus

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/$(PLUGIN) ./cmd/$(PLUGIN)

# The dev environment: servers keep running until `make dev-stop`.
dev:
	VERSION=$(VERSION) scripts/dev.sh start

dev-stop:
	scripts/dev.sh stop

test: vet unit fuzz e2e

unit:
	$(GO_TEST) -race -count=1 ./...

# Each fuzz target runs for FUZZTIME; findings land in testdata/fuzz and
# become regression cases for `make unit`.
fuzz:
	$(GO_TEST) -run='^$$' -fuzz='^FuzzParseResponse$$' -fuzztime=$(FUZZTIME) ./backend/tokenclient/
	$(GO_TEST) -run='^$$' -fuzz='^FuzzParseMetadata$$' -fuzztime=$(FUZZTIME) ./backend/tokenclient/
	$(GO_TEST) -run='^$$' -fuzz='^FuzzJWKS$$' -fuzztime=$(FUZZTIME) ./backend/keys/
	$(GO_TEST) -run='^$$' -fuzz='^FuzzConfigWrite$$' -fuzztime=$(FUZZTIME) .

# Against Vault, then against OpenBao if BAO_BIN is set or bao is on PATH.
e2e:
	scripts/e2e.sh

# Only the 3-node Raft failover test (it is part of `make e2e` too).
e2e-cluster:
	E2E_RUN='^TestCluster' scripts/e2e.sh -v

# Starts its own Vault and stand-ins, prints the table, writes JSON.
bench:
	scripts/bench.sh

# Static binaries for linux and darwin (amd64, arm64) and SHA256SUMS in dist/.
# The version is the latest v* tag or VERSION=...; scripts/release.sh refuses
# to guess one, and refuses a -dev version unless ALLOW_DEV_RELEASE=1. So
# the Makefile's own dev fallback is not passed on.
release:
	$(if $(filter file,$(origin VERSION)),,VERSION=$(VERSION)) scripts/release.sh

vault:
	@scripts/vault.sh

# The OpenBao binary `make e2e` also runs against when BAO_BIN is set.
bao:
	@scripts/bao.sh

# OpenTofu and the Vault provider the Terraform example's test applies it
# with, unpacked from ../shared/terraform/ (tofurc beside the binary).
tofu:
	@scripts/tofu.sh

# Prometheus and promtool for the metrics' end-to-end test and the
# alerting rules' tests: Debian's package, else a build from the Go module
# proxy (scripts/prometheus.sh).
prometheus:
	@scripts/prometheus.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./e2e/...
	scripts/lint.sh

# The pinned golangci-lint (.golangci.yml) alone; `make vet` runs it too.
lint:
	scripts/lint.sh

tidy-check:
	go mod tidy && git diff --exit-code go.mod go.sum

clean:
	rm -rf bin dist .dev
