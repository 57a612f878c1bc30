// Issue 4 benchmarks: replay speed (from the stream and from a file) and resume time.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { refEvents } from '../actors/index.ts';
import { ActorHost } from '../runtime/log/actor-host.ts';
import { connectNats } from '../runtime/transport/connection.ts';
import { toJsonLine } from '../runtime/log/event-format.ts';
import { Journal } from '../runtime/log/journal.ts';
import { NatsServer } from '../runtime/transport/nats-server.ts';
import { readJsonl, replayAll } from '../runtime/log/replay.ts';
import { Cluster } from '../runtime/index.ts';

type Emit = (line: Record<string, unknown>) => void;
const EVENTS = 60_000;

export async function run(emit: Emit): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-events-'));
  const server = await NatsServer.start({ storeDir: dir });
  try {
    const nc = await connectNats({ url: server.url }, 'bench-events');
    const journal = await Journal.open(nc, 'benchlog');
    const host = new ActorHost(journal, 'bench');
    for (let i = 0; i < EVENTS / 2; i++) {
      const a = host.create('ref', `2-bench-${i}`);
      a.send(refEvents.created(i, { owner: 2, creator: 1, task: 'bench#t' }));
      a.send(refEvents.ready(i + 1, 8));
      if (i % 2000 === 1999) await journal.flush();
    }
    await journal.flush();

    let t = performance.now();
    // What `colony replay` does from the stream: read the envelopes, then fold them with verification.
    const fromStream = await journal.read('ref.>');
    replayAll(fromStream, { verify: true });
    let s = (performance.now() - t) / 1000;
    emit({ scenario: 'replay_stream', events: fromStream.length, events_per_s: Math.round(fromStream.length / s), goal: '>= 200000 events/s', ok: fromStream.length / s >= 200_000 });

    const file = join(dir, 'log.jsonl');
    await writeFile(file, fromStream.map((e) => toJsonLine(e)).join('\n') + '\n');
    t = performance.now();
    const fromFile = await readJsonl(file);
    replayAll(fromFile, { verify: true });
    s = (performance.now() - t) / 1000;
    emit({ scenario: 'replay_file', events: fromFile.length, events_per_s: Math.round(fromFile.length / s), goal: '>= 200000 events/s', ok: fromFile.length / s >= 200_000 });
    await nc.close();

    // Resume: a driver with 2 workers is SIGKILLed; a new one connects.
    const name = 'benchresume';
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('../test/fixtures/resume-driver.ts', import.meta.url).pathname, server.url, name], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((r) => createInterface({ input: child.stdout! }).once('line', r));
    const report = JSON.parse(line) as { workers: { pid: number; ospid: number }[] };
    child.kill('SIGKILL');
    t = performance.now();
    const cluster = await Cluster.connect({ nats: server.url, name, heartbeatMs: 200, heartbeatTimeoutMs: 2000 });
    const ms = performance.now() - t;
    const complete = cluster.workers().length === report.workers.length;
    emit({ scenario: 'resume', ms: Math.round(ms), workers: cluster.workers().length, complete, goal: '<= 2000 ms until workers() is complete', ok: complete && ms <= 2000 });
    await cluster.rmprocs(cluster.workers());
    await cluster.close();
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run((l) => console.log(JSON.stringify(l)));
