# Builds the imaging-cdr server into a small runtime image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin imaging-cdr

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/imaging-cdr imaging-cdr \
    && mkdir -p /var/lib/imaging-cdr && chown imaging-cdr /var/lib/imaging-cdr
COPY --from=build /src/target/release/imaging-cdr /usr/local/bin/imaging-cdr
COPY --from=build /src/profiles /usr/share/imaging-cdr/profiles
USER imaging-cdr
WORKDIR /var/lib/imaging-cdr
ENV LISTEN=0.0.0.0:8080 PROFILES_DIR=/usr/share/imaging-cdr/profiles
EXPOSE 8080
ENTRYPOINT ["imaging-cdr"]
CMD ["serve"]
