# A Colony worker image: this repository, its runtime dependencies, and your task modules.
#   docker build -f deploy/worker.Dockerfile -t colony-worker .
# Run: docker run colony-worker --nats tls://nats-1:4222 --name prod --creds /run/secrets/worker.json
# (with COLONY_NATS_CA pointing at the CA certificate).
FROM node:20-bookworm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENTRYPOINT ["node", "runtime/cli/colony.mjs", "worker"]
