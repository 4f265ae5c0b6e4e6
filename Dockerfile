# Build stage: Node and npm only; Bun arrives as a devDependency, exactly as on a developer machine.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json bunfig.toml ./
COPY src ./src
COPY gen ./gen
# The context has no .git, so the commit `version` reports comes in as an argument
# (kind/up.sh passes it); SOURCE_DATE_EPOCH, if given, fixes the build date.
ARG TSGW_BUILD_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
COPY scripts/build.ts ./scripts/build.ts
RUN npm run build

# Runtime: glibc and CA certificates are all the compiled binary needs (distroless/static has no libc).
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/dist/tailscale-gateway /usr/local/bin/tailscale-gateway
USER 65532:65532
EXPOSE 5005 8080
ENTRYPOINT ["/usr/local/bin/tailscale-gateway"]
CMD ["run"]
