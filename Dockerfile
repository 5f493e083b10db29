# The collector as a container: the binary, the built SDK, the demo pages and the dashboard;
# configure with MAIDIAN_* variables (or mount a config file and pass --config).
#   docker build -t maidian . && docker run -p 5000:5000 -e MAIDIAN_READ_KEY=... \
#     -e MAIDIAN_MONGODB_URI=mongodb://db:27017 maidian
# (Not built in CI: this machine has no Docker engine.)
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash scripts/setup.sh \
 && bash sdk-wasm/build.sh \
 && cargo build --release --locked -p maidian-collector -p maidian-cli

FROM debian:bookworm-slim
COPY --from=build /src/target/release/maidian-collector /src/target/release/maidian /usr/local/bin/
COPY --from=build /src/sdk-wasm/dist /usr/share/maidian/sdk
COPY --from=build /src/www /usr/share/maidian/www
WORKDIR /var/lib/maidian
# MALLOC_ARENA_MAX: glibc keeps what each thread's arena frees; two arenas bound the RSS
# (README, "Memory").
ENV MAIDIAN_LISTEN=0.0.0.0:5000 MAIDIAN_DATA_DIR=/var/lib/maidian/data \
    MAIDIAN_SDK_DIR=/usr/share/maidian/sdk MAIDIAN_WWW_DIR=/usr/share/maidian/www \
    MALLOC_ARENA_MAX=2
EXPOSE 5000
STOPSIGNAL SIGTERM
ENTRYPOINT ["maidian-collector"]
