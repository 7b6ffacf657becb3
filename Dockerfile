# canary-gate sidecar image. Build: docker build -t canary-gate .
# Stage 1 builds dist/ with the dev dependencies; stage 2 runs it with production dependencies only.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The npm 'node' dev dependency (Node 24 for machines that ship an older Node) is not needed inside node:24.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:24-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The official image's unprivileged user.
USER node
# 8080 proxy (the Service targets it), 9090 admin (probes, /metrics, /status).
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ADMIN_PORT || 9090) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1's child-free process and receives SIGTERM itself; canary-gate drains on it
# (stops accepting, finishes in-flight requests, publishes the last slot, writes a pending decision, releases the lease).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/bin.js"]
CMD ["run", "--config", "config/example.yaml"]
