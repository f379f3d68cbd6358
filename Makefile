# denv's build, test and demo entry points. `make test` is what CI runs.
GO      ?= go
BIN     := bin/denv
FUZZTIME ?= 10m

.PHONY: build test unit check docker registry images test-images demo compile-examples bench bench-go fuzz clean

# CGO_ENABLED=0: a static binary, which `denv clone` imports into the engine
# as its volume copier alone (a dynamic build works too; its copier image
# then also holds the loader and libraries).
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/denv

# check: formatting and vet, before any test.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# docker: make a Docker daemon reachable (installs and starts one as root).
docker:
	scripts/docker-up.sh

# registry: a private registry on 127.0.0.1:5000 (basic auth) for the
# end-to-end tests of images pulled from a registry.
registry:
	scripts/registry-up.sh

# images: the seed's demo images, built locally with no registry.
images: docker
	scripts/build-images.sh

# test-images: the demo images and the images only the end-to-end tests
# run: Debian's PostgreSQL 15 as denv-test/postgres:15, built with
# debootstrap (needs root; skipped when the image is up to date).
test-images: images
	scripts/pg-image.sh

# test: everything, end-to-end tests on the real engine included. With
# DENV_E2E=require (as CI sets) a missing daemon fails instead of skipping.
test: check
	@if [ "$$DENV_E2E" != "skip" ]; then $(MAKE) --no-print-directory test-images registry; fi
	$(GO) test -count=1 -timeout 25m ./...

# unit: the tests that need no Docker daemon.
unit: check
	DENV_E2E=skip $(GO) test -count=1 ./...

# compile-examples: the compiler's main job on the seed's examples.
compile-examples: build
	$(BIN) compile examples/expert-system-env.denv

# demo: run the seed's expert-system environment and print its endpoint.
# It replaces an earlier `demo` environment, so it can be run again.
demo: build images
	@if $(BIN) envs --all --format json | grep -q '"id": "demo"'; then $(BIN) rm --force demo; fi
	@out=$$($(BIN) run examples/expert-system-env.denv -n demo) || exit 1; echo "$$out"; \
	url=$$(echo "$$out" | awk '$$1 == "expert-system" { print $$2 }'); \
	for i in 1 2 3 4 5 6 7 8 9 10; do curl -fsS "$$url/" && exit 0; sleep 0.5; done; exit 1

# fuzz: each fuzz target for FUZZTIME (default 10m each); a crasher is
# saved under the package's testdata/fuzz and fails the run.
fuzz:
	$(GO) test ./grammar -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./resolve -run '^$$' -fuzz '^FuzzResolveCompile$$' -fuzztime $(FUZZTIME)

# bench: denv beside Docker Compose on the same work, one table (see
# docs/PERFORMANCE.md); bench-go: every Go benchmark of the tree.
bench:
	scripts/bench.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
