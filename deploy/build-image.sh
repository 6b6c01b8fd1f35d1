#!/usr/bin/env bash
# Builds the spout image on this host, FROM scratch: the release binary and the few shared
# libraries it links, nothing else. Needs cargo and a Docker daemon; pulls nothing.
#   IMAGE=spout:dev deploy/build-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
image="${IMAGE:-spout:latest}"

cargo build --release --locked -p spout
bin=target/release/spout
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs"
cp "$bin" "$ctx/rootfs/spout"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV SPOUT_HTTP=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["/spout"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "built $image"
