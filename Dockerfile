# Build stage: Debian 12 with the -dev packages; the same script and build as CI (it also
# builds the static, HTTPS-less libmicrohttpd that blupowd links).
FROM debian:bookworm AS build
WORKDIR /src
COPY . /src
RUN BLUPOW_DEPS=build ./scripts/install-deps.sh \
    && meson setup /build --prefix=/usr -Dtests=disabled --buildtype=release \
    && ninja -C /build \
    && DESTDIR=/install meson install -C /build

# Runtime: Home Assistant's Debian base image (s6-overlay), runtime libraries only.
ARG BUILD_FROM=ghcr.io/home-assistant/amd64-base-debian:bookworm
FROM ${BUILD_FROM}
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsystemd0 libjansson4 libsqlite3-0 curl jq \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /install/usr/ /usr/
COPY addon/rootfs/ /
# The Home Assistant integration, installed into Home Assistant by the install_integration option.
COPY custom_components/blupow/ /usr/share/blupow/integration/blupow/
ARG BUILD_VERSION=0.9.0
ARG BUILD_ARCH=amd64
LABEL io.hass.name="BluPow" io.hass.description="Renogy solar equipment over Bluetooth" \
      io.hass.type="addon" io.hass.version="${BUILD_VERSION}" io.hass.arch="${BUILD_ARCH}"
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD curl -fsS http://127.0.0.1:8099/api/v1/health >/dev/null || exit 1
