import { existsSync, statSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { randomSecret } from '../runtime/transport/nats-server.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import { processAlive, waitFor } from './helpers/wait.ts';

// Tests about the spawned process itself cannot run against an external server.
const external = Boolean(process.env.COLONY_TEST_NATS_URL);

describe('nats-server', () => {
  it.skipIf(external)('serves request/reply to a client with the right password', async () => {
    const password = randomSecret();
    await using nats = await startNats({ user: 'colony', password });
    const nc = await connect({ servers: nats.url, user: nats.user, pass: nats.password });
    try {
      const subject = uniqueName('echo');
      nc.subscribe(subject, {
        callback: (_err, msg) => {
          msg.respond(`hello ${msg.string()}`);
        },
      });
      const reply = await nc.request(subject, 'colony', { timeout: 5_000 });
      expect(reply.string()).toBe('hello colony');
    } finally {
      await nc.close();
    }
  });

  it.skipIf(external)('refuses a client with a wrong password', async () => {
    await using nats = await startNats({ user: 'colony', password: randomSecret() });
    await expect(
      connect({ servers: nats.url, user: 'colony', pass: 'wrong', reconnect: false, maxReconnectAttempts: 0 }),
    ).rejects.toThrow(/authorization/i);
  });

  it('has JetStream enabled', async () => {
    await using nats = await startNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.getAccountInfo();
      expect(info.limits).toBeDefined();
      const stream = uniqueName('s');
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      expect((await jsm.streams.info(stream)).config.name).toBe(stream);
      await jsm.streams.delete(stream);
    } finally {
      await nc.close();
    }
  });

  it.skipIf(external)('gives two servers started at once different ports', async () => {
    const [a, b] = await Promise.all([startNats(), startNats()]);
    try {
      expect(a.server!.port).not.toBe(b.server!.port);
      expect(a.url).not.toBe(b.url);
      expect(a.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it.skipIf(external)('leaves no process and no temp dir behind after stop', async () => {
    const nats = await startNats();
    const server = nats.server!;
    expect(processAlive(server.pid)).toBe(true);
    expect(existsSync(server.storeDir)).toBe(true);
    await nats.stop();
    await waitFor(() => !processAlive(server.pid), { message: 'nats-server exits' });
    expect(existsSync(server.storeDir)).toBe(false);
    await nats.stop(); // idempotent
  });

  it.skipIf(external)('writes its config, which holds the password, with mode 0600', async () => {
    await using nats = await startNats({ user: 'colony', password: randomSecret() });
    expect(statSync(nats.server!.configFile).mode & 0o777).toBe(0o600);
  });
});

describe('uniqueName', () => {
  it('makes distinct names that are valid NATS tokens and stream names', () => {
    const names = new Set(Array.from({ length: 1000 }, () => uniqueName()));
    expect(names.size).toBe(1000);
    for (const name of names) expect(name).toMatch(/^t_[a-z0-9]+$/);
    expect(uniqueName('my.stream*')).toMatch(/^my_stream__[a-z0-9]+$/);
  });
});
