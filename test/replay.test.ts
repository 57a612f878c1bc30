// Replay with verification over recorded logs, offline and from the stream (issue 4, points 2-4).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { readJsonl, replayActor, replayAll } from '../runtime/log/replay.ts';
import type { Envelope } from '../runtime/index.ts';

const run = promisify(execFile);
const COLONY = new URL('../runtime/cli/colony.mjs', import.meta.url).pathname;
const FIXTURE = new URL('./fixtures/logs/core-lifecycle.jsonl', import.meta.url).pathname;

async function colony(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [COLONY, ...args], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('recorded event logs replay to their recorded states', () => {
  it('the committed fixture (workers and refs, with failures) verifies, actor by actor', async () => {
    const envs = await readJsonl(FIXTURE);
    const results = replayAll(envs, { verify: true });
    const states = Object.fromEntries(results.map((r) => [`${r.kind}/${r.id}`, r.state]));
    expect(Object.values(states)).toEqual(expect.arrayContaining(['ready', 'failed', 'freed', 'lost', 'exited']));
    expect(results.filter((r) => r.kind === 'worker').map((r) => r.state).sort()).toEqual(['exited', 'lost', 'ready']);
  });

  it('colony replay --file --verify exits 0 and prints the timeline', async () => {
    const r = await colony(['replay', '--file', FIXTURE, 'worker/4', '--verify']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/worker\.lost\s+ready -> lost/);
    expect(r.stdout).toMatch(/verified: 1 actor\(s\)/);
  });

  it('--until stops the fold at an event', async () => {
    const envs = (await readJsonl(FIXTURE)).filter((e) => e.kind === 'worker' && e.id === '3');
    expect(replayActor(envs, { until: 2, verify: true }).state).toBe('ready');
    expect(replayActor(envs, { verify: true }).state).toBe('exited');
  });

  it('a corrupted event fails with a DeterminismViolationError that names it', async () => {
    const envs = await readJsonl(FIXTURE);
    const victim = envs.find((e) => e.type === 'ref.failed')!;
    const corrupted: Envelope[] = envs.map((e) => (e === victim ? { ...e, to: 'ready' } : e));
    const list = corrupted.filter((e) => e.kind === victim.kind && e.id === victim.id);
    expect(() => replayActor(list, { verify: true })).toThrow(expect.objectContaining({
      name: 'DeterminismViolationError', seq: victim.seq, type: 'ref.failed', recorded: 'ready', replayed: 'failed',
    }));

    const dir = await mkdtemp(join(tmpdir(), 'colony-replay-'));
    try {
      const file = join(dir, 'bad.jsonl');
      await writeFile(file, corrupted.map((e) => JSON.stringify(e)).join('\n') + '\n');
      const r = await colony(['replay', '--file', file, '--verify', '-q']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ref\/\S+ event #2 'ref.failed': recorded state 'ready' but replay gives 'failed'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an event the machine does not accept in its state is a violation too', async () => {
    const envs = (await readJsonl(FIXTURE)).filter((e) => e.kind === 'worker' && e.id === '2');
    const swapped = [envs[1]!, envs[0]!];
    expect(() => replayActor(swapped, { verify: true })).toThrow(/does not accept this event/);
  });

  it('a malformed log line is a clear error naming the line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'colony-replay-'));
    try {
      const file = join(dir, 'broken.jsonl');
      await writeFile(file, (await readFile(FIXTURE, 'utf8')).split('\n').slice(0, 2).join('\n') + '\n{not json\n');
      const r = await colony(['replay', '--file', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/broken\.jsonl:3: not a JSON envelope/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
