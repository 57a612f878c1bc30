/**
 * Test helper: a real nats-server with JetStream in a temp dir, on a random port.
 *
 * Set `COLONY_TEST_NATS_URL` to run the suite against an existing server instead (credentials,
 * if any, go in the URL: `nats://user:pass@host:4222`).
 *
 * @example
 * ```ts
 * await using nats = await startNats();
 * const nc = await connect({ servers: nats.url });
 * const stream = uniqueName('s');
 * ```
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NatsServer } from '../../runtime/transport/nats-server.ts';

/** A server for one test; dispose it (or call stop) when done. */
export interface TestNats {
  url: string;
  user?: string;
  password?: string;
  /** The spawned server, or null when `COLONY_TEST_NATS_URL` points elsewhere. */
  server: NatsServer | null;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a nats-server in a fresh `colony-test-*` temp dir, removed again on stop.
 * @throws NatsServerMissingError (with the install hint) if nats-server is not installed.
 */
export async function startNats(opts: { user?: string; password?: string } = {}): Promise<TestNats> {
  const external = process.env.COLONY_TEST_NATS_URL;
  if (external) {
    const stop = async () => {};
    return { url: external, server: null, stop, [Symbol.asyncDispose]: stop };
  }

  const dir = await mkdtemp(join(tmpdir(), 'colony-test-'));
  let server: NatsServer;
  try {
    server = await NatsServer.start({ storeDir: dir, user: opts.user, password: opts.password });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    })());
  return {
    url: server.url,
    user: opts.user,
    password: opts.password,
    server,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * A fresh name usable as a NATS subject token, stream, consumer or bucket name:
 * only `[A-Za-z0-9_-]`, e.g. `t_k3j4h5x9`.
 */
export function uniqueName(prefix = 't'): string {
  const safePrefix = prefix.replace(/[^A-Za-z0-9_-]/g, '_');
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  // 10 chars of base36 is about 51 bits; a modulo bias of <1% per char does not matter here.
  const suffix = Array.from(randomBytes(10), (b) => alphabet[b % alphabet.length]).join('');
  return `${safePrefix}_${suffix}`;
}
