// The log for people: history, live subscriptions, the observer CLI, snapshots, retention (issue 4).
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Cluster } from '../runtime/index.ts';
import { ActorHost } from '../runtime/log/actor-host.ts';
import { hold } from './fixtures/resume-tasks.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import type { TestNats } from './helpers/nats.ts';
import { tempDir } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';

const run = promisify(execFile);
const COLONY = new URL('../runtime/cli/colony.mjs', import.meta.url).pathname;
const TASKS = new URL('./fixtures/resume-tasks.ts', import.meta.url);

let nats: TestNats;
let cluster: Cluster;
let name: string;
let credsFile: string;

beforeAll(async () => {
  nats = await startNats({ user: 'obs', password: 'obs-secret' });
  name = uniqueName('log');
  cluster = await Cluster.start({
    nats: nats.url, user: 'obs', password: 'obs-secret', name, workers: 2, workerOutput: 'ignore',
    snapshotEvery: { worker: 1, ref: 2 }, retention: { maxAgeMs: 3_600_000, maxBytes: 64 * 1024 * 1024 },
  });
  await cluster.everywhere(TASKS);
  credsFile = join(await tempDir('colony-creds-'), 'creds.json');
  await writeFile(credsFile, JSON.stringify({ user: 'obs', password: 'obs-secret' }), { mode: 0o600 });
});

afterAll(async () => {
  await cluster?.close();
  await nats?.stop();
});

const target = () => ['--nats', nats.url, '--name', name, '--creds', credsFile];

describe('cluster.events', () => {
  it('history gives stored envelopes in order, from a sequence or a time', async () => {
    const before = new Date();
    const r = cluster.remotecall(hold, 2, 'x');
    await r.fetch();
    const all = await cluster.events.history(`ref.${r.id}`);
    expect(all.map((e) => e.type)).toEqual(['ref.created', 'ref.ready']);
    expect(all[0]).toMatchObject({ v: 1, kind: 'ref', id: r.id, seq: 1, from: null, to: 'running' });
    const fromSecond = await cluster.events.history(`ref.${r.id}`, { since: all[1]!.streamSeq });
    expect(fromSecond.map((e) => e.type)).toEqual(['ref.ready']);
    const sinceTime = await cluster.events.history('ref.>', { since: before });
    expect(sinceTime.map((e) => e.id)).toContain(r.id);
    expect(sinceTime.every((e) => e.at >= before.getTime() - 5)).toBe(true);
  });

  it('subscribe streams live envelopes matching a filter', async () => {
    const live = cluster.events.subscribe('worker.*');
    const seen: string[] = [];
    const reading = (async () => {
      for await (const e of live) {
        seen.push(`${e.id}:${e.type}`);
        if (e.type === 'worker.ready') break;
      }
    })();
    const [pid] = await cluster.addprocs(1);
    await reading;
    expect(seen).toEqual([`${pid}:worker.registered`, `${pid}:worker.ready`]);
    await cluster.rmprocs(pid!);
  });
});

describe('snapshots', () => {
  it('restoring from a KV snapshot plus the tail agrees with replaying from zero', async () => {
    const refs = [cluster.remotecall(hold, 2, 1), cluster.remotecall(hold, 3, 2), cluster.remoteRef(2)];
    await refs[2]!.put('v');
    await Promise.all(refs.map((r) => r.wait()));
    await refs[0]!.free();
    const host = new ActorHost(cluster.journal, 'test-reader');
    await waitFor(async () => ((await cluster.journal.snapshot('ref', refs[1]!.id))?.seq ?? 0) >= 2, { message: 'no ref snapshot after 2 events' });
    for (const r of refs) {
      const fromSnap = await host.restore('ref', r.id, { verify: true });
      const fromZero = await host.restore('ref', r.id, { verify: true, useSnapshot: false });
      expect(fromSnap.state).toBe(fromZero.state);
      expect(fromSnap.context).toEqual(fromZero.context);
      expect(fromSnap.seq).toBe(fromZero.seq);
      expect(fromSnap.streamSeq).toBe(fromZero.streamSeq);
    }
    const w = await cluster.journal.snapshot('worker', '2');
    expect(w).toMatchObject({ kind: 'worker', id: '2', value: 'ready' });
  });
});

describe('retention', () => {
  it('stream limits come from the options', async () => {
    const nc = await connect({ servers: nats.url, user: 'obs', pass: 'obs-secret' });
    try {
      const info = await (await jetstreamManager(nc)).streams.info(`COLONY_${name}_EVENTS`);
      expect(info.config.max_age).toBe(3_600_000 * 1_000_000);
      expect(info.config.max_bytes).toBe(64 * 1024 * 1024);
      expect(info.config.allow_direct).toBe(true);
    } finally {
      await nc.close();
    }
  });
});

describe('the observer CLI', () => {
  it('colony events prints one line per event; --json prints envelopes', async () => {
    const { stdout } = await run(process.execPath, [COLONY, 'events', 'worker.*', ...target()]);
    expect(stdout).toMatch(/worker\/2\s+#1\s+worker\.registered\s+∅ -> registered/);
    expect(stdout).toMatch(/worker\/3\s+#2\s+worker\.ready\s+registered -> ready/);
    const json = (await run(process.execPath, [COLONY, 'events', 'worker.2', '--json', ...target()])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(json[0]).toMatchObject({ kind: 'worker', id: '2', type: 'worker.registered', seq: 1 });
  });

  it('colony events --follow shows new events as they happen', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [COLONY, 'events', 'ref.>', '--follow', ...target()]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    try {
      await waitFor(() => out.includes('ref.'), { message: 'no history printed' });
      const r = cluster.remotecall(hold, 3, 'followed');
      await r.wait();
      await waitFor(() => out.includes(`ref/${r.id}`) && out.includes('ref.ready'), { message: `live event not shown:\n${out}` });
    } finally {
      child.kill('SIGINT');
    }
  });

  it('colony replay <kind>/<id> --verify replays from the stream', async () => {
    const { stdout } = await run(process.execPath, [COLONY, 'replay', 'worker/2', '--verify', ...target()]);
    expect(stdout).toMatch(/worker\/2: \d+ event\(s\), state ready/);
    expect(stdout).toMatch(/verified: 1 actor/);
  });

  it('colony export then replay --file works offline', async () => {
    const { stdout } = await run(process.execPath, [COLONY, 'export', 'ref.>', ...target()], { maxBuffer: 64 << 20 });
    const file = join(await tempDir('colony-export-'), 'log.jsonl');
    await writeFile(file, stdout);
    const r = await run(process.execPath, [COLONY, 'replay', '--file', file, '--verify', '-q']);
    expect(r.stdout).toMatch(/verified: \d+ actor\(s\)/);
  });

  it('colony status shows workers with host and state, and refs by state', async () => {
    const held = cluster.remotecall(hold, 2, 'held');
    await held.wait();
    const { stdout } = await run(process.execPath, [COLONY, 'status', ...target()]);
    expect(await held.isReady()).toBe(true);
    expect(stdout).toMatch(/^2\s+\S+\s+ready/m);
    expect(stdout).toMatch(/^3\s+\S+\s+ready/m);
    expect(stdout).toMatch(/refs on live workers: .*ready \d+/);
    expect(stdout).toMatch(/driver: alive/);
  });

  it('a missing cluster is a clear error', async () => {
    const dir = await tempDir('colony-none-');
    await expect(run(process.execPath, [COLONY, 'events', '--state-dir', dir])).rejects.toMatchObject({
      stderr: expect.stringMatching(/no cluster 'default' here/),
    });
  });
});
