GO ?= go
PKGS := ./...

.PHONY: all build test demo bench lint fmt fuzz vet

all: build

build:
	$(GO) build -o bin/recon ./cmd/recon

# The whole suite: formatting, vet, and every test with the race detector.
test:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 20m $(PKGS)

# The main job on an embedded broker, no setup.
demo:
	$(GO) run ./cmd/recon demo

bench:
	$(GO) run ./cmd/recon bench

# Each decoder's fuzz target for a short while.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDebeziumJSON -fuzztime=$(FUZZTIME) ./consumer
	$(GO) test -run='^$$' -fuzz=FuzzFlatJSON -fuzztime=$(FUZZTIME) ./consumer
	$(GO) test -run='^$$' -fuzz=FuzzDebeziumAvro -fuzztime=$(FUZZTIME) ./consumer
	$(GO) test -run='^$$' -fuzz=FuzzFlatAvro -fuzztime=$(FUZZTIME) ./consumer
	$(GO) test -run='^$$' -fuzz=FuzzFlatKey -fuzztime=$(FUZZTIME) ./consumer
	$(GO) test -run='^$$' -fuzz=FuzzNormalizeValue -fuzztime=$(FUZZTIME) ./compare
	$(GO) test -run='^$$' -fuzz=FuzzDecodeKeyState -fuzztime=$(FUZZTIME) ./state

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# golangci-lint is not vendored; install it with your package manager.
lint:
	@command -v golangci-lint >/dev/null || { echo "golangci-lint not installed"; exit 1; }
	golangci-lint run ./...
