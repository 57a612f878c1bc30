/**
 * Smoke test of deploy/compose.yaml with testcontainers: the 3 NATS nodes and two worker
 * containers come up, and a driver on this machine runs deploy/check/check.ts against them (one
 * remote call per worker, a call between workers, a distributed array).
 *
 * It needs a Docker engine with the compose plugin. Without one it is skipped, and says so:
 * `deploy smoke test SKIPPED: no Docker engine found (...)`. Everything else about deploy/ is
 * tested without Docker in deploy.test.ts.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DockerComposeEnvironment, Wait, getContainerRuntimeClient } from 'testcontainers';
import type { StartedDockerComposeEnvironment } from 'testcontainers';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DETECT_MS = 5000;

/** Why the smoke test cannot run here (`no Docker engine found (...)`), or null when a Docker engine with compose answers. */
async function noDockerReason(): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no Docker engine found (no answer within ${DETECT_MS} ms)`), DETECT_MS);
  });
  const probe = (async () => {
    try {
      await getContainerRuntimeClient();
    } catch (e) {
      return `no Docker engine found (${(e as Error).message})`;
    }
    try {
      await promisify(execFile)('docker', ['compose', 'version'], { timeout: DETECT_MS });
      return null;
    } catch (e) {
      return `no docker compose found (a Docker engine answers; \`docker compose version\`: ${(e as Error).message.split('\n')[0]})`;
    }
  })();
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const noDocker = await noDockerReason();
if (noDocker) console.warn(`deploy smoke test SKIPPED: ${noDocker}`);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('deploy smoke (testcontainers, deploy/compose.yaml)', () => {
  let env: StartedDockerComposeEnvironment | undefined;
  let secrets: string | undefined;

  afterAll(async () => {
    await env?.down({ removeVolumes: true, timeout: 10_000 });
    if (secrets) await rm(secrets, { recursive: true, force: true });
  });

  it.skipIf(noDocker)(
    `compose up with 2 workers, then a driver on the host makes remote calls over TLS${noDocker ? ` (SKIPPED: ${noDocker})` : ''}`,
    async () => {
      secrets = await tempDir('colony-deploy-secrets-');
      await promisify(execFile)('bash', [join(ROOT, 'deploy/gen-secrets.sh'), secrets]);
      const ports = [await freePort(), await freePort(), await freePort()];
      const name = 'smoke';
      env = await new DockerComposeEnvironment(join(ROOT, 'deploy'), 'compose.yaml')
        .withEnvironment({
          COLONY_SECRETS_DIR: secrets,
          // Workers import task modules by the driver's file URLs: mount the repo at the same path.
          COLONY_APP_DIR: ROOT,
          COLONY_NAME: name,
          NATS_1_PORT: String(ports[0]), NATS_2_PORT: String(ports[1]), NATS_3_PORT: String(ports[2]),
        })
        .withClientOptions({ commandOptions: ['--scale', 'worker=2'] })
        .withWaitStrategy('nats-1-1', Wait.forHealthCheck())
        .withWaitStrategy('nats-2-1', Wait.forHealthCheck())
        .withWaitStrategy('nats-3-1', Wait.forHealthCheck())
        .withStartupTimeout(180_000)
        .up();
      const nats = ports.map((p) => `tls://localhost:${p}`).join(',');
      // The workers run `npm ci` on first start: give them time to join.
      const { stdout } = await promisify(execFile)(process.execPath, [
        join(ROOT, 'runtime/cli/colony.mjs'), 'run', join(ROOT, 'deploy/check/check.ts'),
        '--nats', nats, '--name', name, '--creds', join(secrets, 'driver.json'), '--workers', '2', '--timeout', '300000',
      ], { cwd: ROOT, env: { ...process.env, COLONY_NATS_CA: join(secrets, 'certs', 'ca.pem') }, timeout: 360_000 });
      const report = JSON.parse(stdout.trim().split('\n').pop()!) as { ok: boolean; workers: { pid: number; host: string }[]; error?: string };
      expect(report.error).toBeUndefined();
      expect(report.ok).toBe(true);
      expect(report.workers).toHaveLength(2);
      // Each answer came from a container, not from this machine.
      expect(new Set(report.workers.map((w) => w.host)).size).toBe(2);
    },
    600_000,
  );
});
