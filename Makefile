GO ?= go
PKGS := ./...

.PHONY: all build test demo demo-avro chaos bench bench-keys soak lint fmt fuzz fuzz-short vet faults

all: build

build:
	$(GO) build -o bin/recon ./cmd/recon

# The whole suite: formatting, vet, every test with the race detector, then
# every fuzz target for FUZZTIME_SHORT (new crashers land in testdata/fuzz).
test:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 20m $(PKGS)
	@$(MAKE) --no-print-directory fuzz-short

# The main job on an embedded broker, no setup.
demo:
	$(GO) run ./cmd/recon demo

# The same with a Debezium Avro source (schema registry on the embedded
# broker), a flat JSON replica and Avro events.
demo-avro:
	$(GO) run ./cmd/recon demo --format avro

# The demo with recon as a child process killed with SIGKILL CHAOS_KILLS
# times (make test runs TestChaos with 20); exits non-zero unless nothing
# was lost or duplicated. CHAOS_FORMAT=avro runs the Avro pipeline.
CHAOS_KILLS ?= 200
CHAOS_FORMAT ?= json
chaos: build
	bin/recon demo --chaos --kills $(CHAOS_KILLS) --keys 5000 --duration 3m --format $(CHAOS_FORMAT)

bench:
	$(GO) run ./cmd/recon bench

# The broker-fault suite alone (pipeline/faults_test.go): about a minute with
# the race detector, 30 s of it the broker outage; FAULT_OUTAGE=3s for a
# quick pass.
FAULT_OUTAGE ?= 30s
faults:
	$(GO) test -race -count=1 -run '^TestFault' ./pipeline/ -fault.outage=$(FAULT_OUTAGE)

# Memory and disk per key with 10M key states on disk (a few minutes);
# KEYS=1000000 for a quicker look.
KEYS ?= 10000000
bench-keys:
	$(GO) test -run '^$$' -bench BenchmarkStateOnDisk -benchtime 1x -timeout 60m ./reconcile -keys $(KEYS)

# Ten minutes at 2000 changes/s, memory reported every second and in the
# report. Fault rates are low so that keys stay live for the whole run; a 10s
# window absorbs the stalls of a shared machine.
soak:
	$(GO) run ./cmd/recon demo --duration 10m --rate 2000 --window 10s --keys 5000 \
		--missing-rate 0.0005 --lagging-rate 0.0004 --conflict-rate 0.0004 --orphan-rate 0.0005

# Every fuzz target, as package/Name: go test -fuzz takes one per run. `make
# fuzz` fails when a Fuzz function in the tree is missing here.
FUZZ_TARGETS := consumer/FuzzDebeziumJSON consumer/FuzzFlatJSON consumer/FuzzDebeziumAvro \
	consumer/FuzzFlatAvro consumer/FuzzFlatKey consumer/FuzzCheckJSON compare/FuzzNormalizeValue state/FuzzDecodeKeyState
FUZZTIME ?= 20s
# The short pass `make test` runs after the unit tests, per target.
FUZZTIME_SHORT ?= 5s

fuzz:
	@listed=$$(printf '%s\n' $(FUZZ_TARGETS) | sed 's|.*/||' | sort); \
	found=$$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/^func //' | sort); \
	if [ "$$listed" != "$$found" ]; then \
		echo "FUZZ_TARGETS does not list exactly the fuzz targets in the tree:" $$found; exit 1; fi
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*/} in ./$${t%/*} for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz='^'$${t#*/}'$$' -fuzztime=$(FUZZTIME) ./$${t%/*} || exit 1; \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_SHORT)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# golangci-lint is not vendored; install it with your package manager.
lint:
	@command -v golangci-lint >/dev/null || { echo "golangci-lint not installed"; exit 1; }
	golangci-lint run ./...
