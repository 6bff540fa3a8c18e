# The hub as a container image: a static binary on `scratch`, run as a non-root user.
#
#   docker build -t hub .          (or: podman build -t hub .)
#   docker run -p 8080:8080 -v hub-data:/data -e HUB_MASTER_KEY=... hub
#
# The image holds the shipped hub.toml at /etc/hub/hub.toml; mount your own over it
# (`-v ./hub.toml:/etc/hub/hub.toml:ro`). The environment wins over the file for what differs
# between hosts: HUB_LISTEN (here 0.0.0.0:8080), HUB_DATA_DIR (here /data, a volume owned by the
# image's user), HUB_MASTER_KEY or HUB_MASTER_KEY_FILE (a mounted file, mode 0400 or 0600, owned
# by uid 10001). See docs/container.md; compose.yaml runs it with PostgreSQL.

# 1. Build: the toolchain the README names (Rust with wasm32-wasip2 for the bundled connectors),
#    and musl for a binary that needs no libc in the image.
FROM docker.io/library/rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2 x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p hub --bin hub \
 && mkdir -p /out/data \
 && cp target/x86_64-unknown-linux-musl/release/hub /out/hub \
 && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt \
 && cp hub.toml /out/hub.toml

# 2. Run: nothing but the binary, the CA roots its outbound HTTPS trusts, and the config.
FROM scratch AS hub
COPY --from=build /out/hub /hub
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/hub.toml /etc/hub/hub.toml
COPY --chown=10001:10001 --from=build /out/data /data
USER 10001:10001
ENV HUB_CONFIG=/etc/hub/hub.toml \
    HUB_LISTEN=0.0.0.0:8080 \
    HUB_DATA_DIR=/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/hub"]
CMD ["serve"]
