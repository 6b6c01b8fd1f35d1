#!/usr/bin/env bash
# Builds the spout image on this host, FROM scratch (deploy/runtime.Dockerfile): the release
# binary without its debug information, the few shared libraries it links, CA certificates and an
# empty /var/lib/spout. Needs cargo, binutils' strip and a Docker daemon; pulls nothing.
#   IMAGE=spout:dev deploy/build-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
image="${IMAGE:-spout:latest}"

cargo build --release --locked -p spout
bin=target/release/spout
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/var/lib/spout" "$rootfs/etc/ssl/certs"
strip --strip-debug -o "$rootfs/spout" "$bin"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
# Before glibc 2.34, name lookups load NSS modules at run time, which ldd does not list.
libc_dir="$(dirname "$(ldd "$bin" | grep -o '/[^ ]*libc\.so[^ ]*' | head -1)")"
for nss in "$libc_dir"/libnss_files.so.2 "$libc_dir"/libnss_dns.so.2; do
    if [ -f "$nss" ]; then cp -L "$nss" "$rootfs$nss"; fi
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
else
    echo "note: no /etc/ssl/certs/ca-certificates.crt here (Debian's ca-certificates); the image has no CA certificates" >&2
fi
cp deploy/runtime.Dockerfile "$ctx/Dockerfile"
previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
# The image the tag pointed to before is removed, unless something still uses it (another tag,
# a container): rebuilding leaves no dangling images behind.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
fi
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "built $image: $((size / 1024 / 1024)) MiB ($size bytes)"
