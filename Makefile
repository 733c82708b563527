# Usual verbs over Meson. `make check` and `make demo` first install what they need.
BUILD    ?= build
PREFIX   ?= /usr/local
CC       ?= cc
SANITIZE ?=
MESON_OPTS ?=

TEST_ARGS ?=

ifeq ($(SANITIZE),1)
MESON_OPTS += -Db_sanitize=address,undefined -Db_lundef=false
# The real-stack tier and Home Assistant run once, on the plain build: under TCG the VM takes
# minutes already, and Home Assistant tests Python against the same API.
TEST_ARGS += --no-suite realstack --no-suite homeassistant
endif

.PHONY: all deps build check demo install format fuzz clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	@./scripts/install-deps.sh
	CC=$(CC) meson setup $(BUILD) --prefix=$(PREFIX) $(MESON_OPTS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

check: deps build
	meson test -C $(BUILD) --verbose --print-errorlogs --num-processes 2 $(TEST_ARGS)

demo: deps build
	./scripts/demo.sh $(BUILD)

install: build
	meson configure $(BUILD) --prefix=$(PREFIX)
	meson install -C $(BUILD) --destdir "$(DESTDIR)"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

fuzz:
	@./scripts/install-deps.sh
	CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-fuzz
	./scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
