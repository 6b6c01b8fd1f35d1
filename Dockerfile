# For build machines that can pull base images: builds spout, then the same minimal runtime image
# as deploy/build-image.sh (which builds from the local toolchain and pulls nothing).
#   docker build -t spout .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p spout \
 && mkdir -p /rootfs/var/lib/spout /rootfs/etc/ssl/certs \
 && strip --strip-debug -o /rootfs/spout target/release/spout \
 && for lib in $(ldd target/release/spout | grep -o '/[^ ]*'); do \
        mkdir -p "/rootfs$(dirname "$lib")" && cp -L "$lib" "/rootfs$lib"; \
    done \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && mkdir /context && mv /rootfs /context/rootfs

# The runtime stage: the lines of deploy/runtime.Dockerfile, with the rootfs from the build.
FROM scratch
COPY --from=build /context/rootfs/ /
ENV SPOUT_HTTP=0.0.0.0:8000
EXPOSE 8000
VOLUME ["/var/lib/spout"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/spout", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/spout"]
