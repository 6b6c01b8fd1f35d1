# spout's runtime image: nothing but the binary, the shared libraries it links, CA certificates
# (for TLS routes to come) and an empty state directory. deploy/build-image.sh builds it from the local
# build; the Dockerfile at the root ends with the same lines.
FROM scratch
COPY rootfs/ /
ENV SPOUT_HTTP=0.0.0.0:8000
EXPOSE 8000
VOLUME ["/var/lib/spout"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/spout", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/spout"]
