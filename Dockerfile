# canary-gate sidecar image. Build: docker build -t canary-gate .
# Stage 1 builds dist/ with the dev dependencies; stage 2 installs the sidecar's production packages only (no dev
# dependencies, no optional group: the demo's, the load profiles' and the dashboards' packages stay out); stage 3 runs
# it with no package manager at all.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The npm 'node' dev dependency (Node 24 for machines that ship an older Node) is not needed inside node:24.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund

FROM node:24-slim AS runtime
# Nothing installs anything in a running sidecar: npm, npx, corepack (and yarn, where the base image has it) go.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
  /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
# The official image's unprivileged user `node`, by number: the kubelet can check runAsNonRoot only against a UID.
USER 1000:1000
# 8080 proxy (the Service targets it), 9090 admin (probes, /metrics, /status).
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ADMIN_PORT || 9090) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1's child-free process and receives SIGTERM itself; canary-gate drains on it
# (stops accepting, finishes in-flight requests, publishes the last slot, writes a pending decision, releases the lease).
STOPSIGNAL SIGTERM
# --max-semi-space-size=4 (MiB): a young generation of 2 x 4 MiB instead of up to 2 x 32 MiB, the same as `npm start`;
# the README's "Runtime flags" gives the measurements (RSS idle and after load, CPU, tail).
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/cli/bin.js"]
CMD ["run", "--config", "config/example.yaml"]
