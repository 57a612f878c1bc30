/** The dashboard's model: what the server and the page fold from events, heartbeats and spans. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Envelope } from '../actors/index.ts';
import { SPAN_KEEP_MAX, SPAN_KEEP_MS, applyDelta, applyEvent, applyHeartbeat, applySpans, emptyModel, matchesFilter, shortTask } from '../runtime/dashboard/dashboard-model.ts';
import type { Span } from '../runtime/dashboard/dashboard-model.ts';

const env = (kind: Envelope['kind'], id: string, seq: number, type: string, to: string, data: Record<string, unknown> = {}, at = 1000 + seq): Envelope =>
  ({ v: 1, kind, id, seq, at, type, from: null, to, data });

describe('dashboard model', () => {
  it('folds a worker from its events and heartbeats, once each even when history and live overlap', () => {
    const m = emptyModel('c');
    const reg = env('worker', '2', 1, 'worker.registered', 'registered', { pid: 2, host: 'node7', ospid: 99, launchToken: 't', manager: 'sge' });
    expect(applyEvent(m, reg, 100)).toBe(true);
    expect(applyEvent(m, env('worker', '2', 2, 'worker.ready', 'ready', { modules: 1 }), 100)).toBe(true);
    expect(applyEvent(m, reg, 100)).toBe(false);
    applyHeartbeat(m, { pid: 2, running: 1, completed: 7, task: 'file:///x/tasks.ts#f', rss: 5e7 }, 5000);
    applyHeartbeat(m, { pid: 1 }, 5001);
    expect(m.workers['2']).toMatchObject({ pid: 2, host: 'node7', manager: 'sge', state: 'ready', hb: { completed: 7, seenAt: 5000 } });
    expect(m.driverSeenAt).toBe(5001);
    expect(m.log).toHaveLength(2);
    expect(m.counts.worker).toBe(2);
    applyEvent(m, env('worker', '2', 3, 'worker.lost', 'lost', { reason: 'no heartbeat for 5 s' }), 100);
    expect(m.workers['2']).toMatchObject({ state: 'lost', reason: 'no heartbeat for 5 s', endedAt: 1003 });
  });

  it('folds a map: done, retried, joined workers, and failed items from its spans', () => {
    const m = emptyModel('c');
    applyEvent(m, env('map', 'm1', 1, 'map.started', 'running', { task: 'k#f', items: 100, workers: [2, 3], batchSize: 'auto', retries: 1 }), 100);
    applyEvent(m, env('map', 'm1', 2, 'map.item.retried', 'running', { items: [4, 5, 6], lostPid: 3, newPid: 2, attempt: 1 }), 100);
    applyEvent(m, env('map', 'm1', 3, 'map.worker.joined', 'running', { pid: 4 }), 100);
    applyEvent(m, env('map', 'm1', 4, 'map.progressed', 'running', { done: 40 }), 100);
    applySpans(m, { v: 1, pid: 2, spans: [['k#f', 1, 2, null, 'm1', 10, 3], ['k#f', 2, 3, null, 'm1', 10, 0]] });
    applyEvent(m, env('map', 'm1', 5, 'map.finished', 'finished', { done: 100 }), 100);
    expect(m.maps.m1).toMatchObject({ task: 'k#f', total: 100, done: 100, retried: 3, failed: 3, workers: [2, 3, 4], state: 'finished', endedAt: 1005 });
  });

  it('folds a pool into size, queued and ready over time, its decisions and marks', () => {
    const m = emptyModel('c');
    applyEvent(m, env('pool', 'p', 1, 'pool.started', 'running', { manager: 'sge', policy: {} }, 0), 100);
    applyEvent(m, env('pool', 'p', 2, 'pool.decided', 'running', { ready: 9, idle: 0, queued: 0, running: 0, action: 'spawn', reason: 'ready 9 > idle 0' }, 10), 100);
    applyEvent(m, env('pool', 'p', 3, 'pool.spawned', 'running', { launch: 'l', count: 2 }, 11), 100);
    applyEvent(m, env('pool', 'p', 4, 'pool.worker.joined', 'running', { pid: 5 }, 20), 100);
    applyEvent(m, env('pool', 'p', 5, 'pool.worker.joined', 'running', { pid: 6 }, 21), 100);
    applyEvent(m, env('pool', 'p', 6, 'pool.worker.retired', 'running', { pid: 5, reason: 'idle' }, 30), 100);
    applyEvent(m, env('pool', 'p', 7, 'pool.paused', 'paused', { reason: '3 failed launches' }, 40), 100);
    const p = m.pools.p!;
    expect(p).toMatchObject({ manager: 'sge', state: 'paused', reason: '3 failed launches', workers: [6], launches: 1, ready: 9 });
    expect(p.series).toEqual([[0, 0, 0, 0], [10, 0, 0, 9], [20, 1, 0, 9], [21, 2, 0, 9], [30, 1, 0, 9]]);
    expect(p.decisions).toEqual([{ at: 10, action: 'spawn', reason: 'ready 9 > idle 0', ready: 9, idle: 0, queued: 0, running: 0 }]);
    expect(p.marks.map((x) => x.text)).toEqual(['spawned 2', 'worker 5 joined', 'worker 6 joined', 'worker 5 retired (idle)', 'paused: 3 failed launches']);
  });

  it('folds a job: spec, host, steps of the current run, and the output tail', () => {
    const m = emptyModel('c');
    applyEvent(m, env('job', 'j', 1, 'job.queued', 'queued', { spec: { name: 'regrid', class: 'local', queue: 'q', steps: ['a', 'b', 'c'] } }), 100);
    applyEvent(m, env('job', 'j', 2, 'job.granted', 'granted', { host: 'h1' }), 100);
    applyEvent(m, env('job', 'j', 3, 'job.started', 'running', { host: 'h1', ospid: 1, run: 1 }), 100);
    applyEvent(m, env('job', 'j', 4, 'job.step.completed', 'running', { step: 'a' }), 100);
    applyEvent(m, env('job', 'j', 5, 'job.retrying', 'queued', { code: 1, reason: 'exit 1', stderrTail: 'boom' }), 100);
    applyEvent(m, env('job', 'j', 6, 'job.started', 'running', { host: 'h2', ospid: 2, run: 2 }), 100);
    applyEvent(m, env('job', 'j', 7, 'job.step.completed', 'running', { step: 'a' }), 100);
    applyEvent(m, env('job', 'j', 8, 'job.step.completed', 'running', { step: 'b' }), 100);
    expect(m.jobs.j).toMatchObject({ name: 'regrid', cls: 'local', queue: 'q', host: 'h2', state: 'running', steps: ['a', 'b', 'c'], done: ['a', 'b'], run: 2, tail: 'boom' });
  });

  it('keeps spans for a window and a count per process', () => {
    const m = emptyModel('c');
    const span = (t: number): Span => ['k#f', t, t + 1, null, null, 1, 0];
    applySpans(m, { v: 1, pid: 3, spans: [span(0), span(10)] });
    applySpans(m, { v: 1, pid: 3, spans: [span(SPAN_KEEP_MS + 5)] });
    expect(m.spans['3']!.map((s) => s[1])).toEqual([10, SPAN_KEEP_MS + 5]);
    applySpans(m, { v: 1, pid: 4, spans: Array.from({ length: SPAN_KEEP_MAX + 10 }, (_, i) => span(i)) });
    expect(m.spans['4']).toHaveLength(SPAN_KEEP_MAX);
    expect(m.spans['4']![0]![1]).toBe(10);
  });

  it('bounds the event tail and folds deltas', () => {
    const m = emptyModel('c');
    const events = Array.from({ length: 600 }, (_, i) => env('ref', `2-a-${i}`, 1, 'ref.created', 'running'));
    applyDelta(m, { now: 0, events, hbs: [], spans: [], dropped: 0 }, 100, 0);
    expect(m.log.length).toBeLessThanOrEqual(100 + 256);
    expect(m.log.at(-1)!.id).toBe('2-a-599');
    expect(m.counts.ref).toBe(600);
  });

  it('matches subject filters token by token, as NATS does', () => {
    const w2 = { kind: 'worker' as const, id: '2' };
    const ref = { kind: 'ref' as const, id: '2-ab-7' };
    expect(matchesFilter(w2, '>')).toBe(true);
    expect(matchesFilter(w2, 'worker.*')).toBe(true);
    expect(matchesFilter(w2, 'worker.2')).toBe(true);
    expect(matchesFilter(w2, 'worker.3')).toBe(false);
    expect(matchesFilter(w2, 'worker')).toBe(false);
    expect(matchesFilter(w2, 'worker.>')).toBe(true);
    expect(matchesFilter(ref, 'worker.*')).toBe(false);
    expect(matchesFilter(ref, 'ref.>')).toBe(true);
    expect(matchesFilter(ref, '*.2-ab-7')).toBe(true);
    expect(matchesFilter(ref, '')).toBe(true);
  });

  it('shortens task keys for display', () => {
    expect(shortTask('file:///home/u/proj/tasks.ts#countHeads')).toBe('tasks.ts#countHeads');
    expect(shortTask('colony:pmap#colonyPmapBatch')).toBe('colony:pmap#colonyPmapBatch');
    expect(shortTask(null)).toBe('');
  });
  it('folds a real pool run (the Slurm log recorded for what-if): size over time, decisions with reasons, its maps', () => {
    const m = emptyModel('c', true);
    const lines = readFileSync(new URL('./fixtures/logs/pool-slurm.jsonl', import.meta.url), 'utf8').trim().split('\n');
    for (const l of lines) applyEvent(m, JSON.parse(l) as Envelope, 1000);
    const pools = Object.values(m.pools);
    expect(pools).toHaveLength(1);
    const p = pools[0]!;
    expect(p.state).toBe('closed');
    // It grew (never past its max of 3) and came back to 0 once the work was done.
    const sizes = p.series.map(([, size]) => size);
    expect(Math.max(...sizes)).toBeGreaterThan(0);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(3);
    expect(sizes.at(-1)).toBe(0);
    expect(p.decisions.some((d) => d.action === 'spawn')).toBe(true);
    for (const d of p.decisions) expect(d.reason).toMatch(/ready/);
    expect(Object.values(m.maps).map((x) => [x.id, x.done, x.total, x.state])).toEqual([
      ['first', 30, 30, 'finished'], ['second', 12, 12, 'finished'], ['third', 20, 20, 'finished'],
    ]);
  });
});
