# The collector as a container: one static-ish binary, a config file, env overrides.
#   docker build -t maidian . && docker run -p 5000:5000 -e MAIDIAN_READ_KEY=... \
#     -e MAIDIAN_MONGODB_URI=mongodb://db:27017 maidian
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p maidian-collector -p maidian-analytics

FROM debian:bookworm-slim
COPY --from=build /src/target/release/maidian-collector /src/target/release/maidian /usr/local/bin/
WORKDIR /var/lib/maidian
ENV MAIDIAN_LISTEN=0.0.0.0:5000 MAIDIAN_DATA_DIR=/var/lib/maidian/data
EXPOSE 5000
STOPSIGNAL SIGTERM
ENTRYPOINT ["maidian-collector"]
