/**
 * The floors of the bench (bench/floors.ts) measure what they say, on real processes and a real
 * nats-server, with small sizes. Their speed is not asserted: only that each ran and checked its
 * own work (a floor throws when its work went wrong).
 */
import { describe, expect, it } from 'vitest';
import { cellAt, serialLifeStep } from '../examples/life-tasks.ts';
import { jetstreamFloor, lifeFloor, memcpyFloor, natsRequestFloor, nodeStartFloor, withFloor, wordLifeStep } from '../bench/floors.ts';

describe('bench floors', () => {
  it('the word kernel on a whole torus gives serialLifeStep\'s boards, generation after generation', () => {
    const rows = 13;
    const cols = 24;
    let a: Uint8Array = new Uint8Array(rows * cols);
    for (let i = 0; i < a.length; i++) a[i] = cellAt(i, 3) < 0.35 ? 1 : 0;
    let b: Uint8Array = a.slice();
    let alive = 0;
    for (let g = 0; g < 12; g++) {
      a = serialLifeStep(a, rows, cols);
      b = wordLifeStep(b, rows, cols);
      expect(Array.from(b)).toEqual(Array.from(a));
      alive += a.reduce((s, x) => s + x, 0);
    }
    expect(alive).toBeGreaterThan(0);
  });

  it('ratio is figure / floor, and says which way is better', () => {
    const t = withFloor('p50_us', 300, 'floor_p50_us', 200, 'time', 'bare');
    expect(t).toMatchObject({ floor_p50_us: 200, ratio: 1.5 });
    expect(t.ratio_is).toMatch(/lower is better; floor: bare/);
    const r = withFloor('events_per_s', 1000, 'floor_events_per_s', 3000, 'rate', 'raw');
    expect(r).toMatchObject({ floor_events_per_s: 3000, ratio: 0.333 });
    expect(r.ratio_is).toMatch(/higher is better/);
  });

  it('bare nats.js request/reply with a child process, of the given sizes', async () => {
    const f = await natsRequestFloor({ requestBytes: 75, replyBytes: 10, calls: 50, warmup: 10 });
    expect(f).toMatchObject({ calls: 50, request_bytes: 75, reply_bytes: 10 });
    expect(f.p50_us).toBeGreaterThan(0);
    expect(f.p99_us).toBeGreaterThanOrEqual(f.p50_us);
    // Measured once per run: the same options give the same measurement.
    expect(await natsRequestFloor({ requestBytes: 75, replyBytes: 10, calls: 50, warmup: 10 })).toBe(f);
  });

  it('raw JetStream publishes: pipelined with the journal\'s headers, unchained, serial; all stored', async () => {
    const f = await jetstreamFloor({ payloadBytes: [125, 103], events: 400, serialEvents: 20, warmup: 40 });
    expect(f).toMatchObject({ events: 400, serial_events: 20, payload_bytes: [125, 103] });
    for (const k of ['pipelined_per_s', 'unchained_no_headers_per_s', 'serial_per_s', 'serial_p50_us'] as const) expect(f[k]).toBeGreaterThan(0);
  });

  it('bare node -e starts, one and two at once', async () => {
    const f = await nodeStartFloor({ processes: 2, runs: 1 });
    expect(f.one_ms).toBeGreaterThan(0);
    expect(f.parallel_ms).toBeGreaterThan(0);
  });

  it('Life in one process and memcpy', async () => {
    const l = await lifeFloor({ n: 64, density: 0.3, seed: 7, generations: 2, runs: 1 });
    expect(l.generations_per_s).toBeGreaterThan(0);
    expect(l.serial_step_generations_per_s).toBeGreaterThan(0);
    const m = await memcpyFloor({ bytes: 1 << 20, reps: 2 });
    expect(m.mb_per_s).toBe(Math.max(m.buffer_copy_mb_per_s, m.typed_array_set_mb_per_s));
    expect(m.fresh_memory_mb_per_s).toBeGreaterThan(0);
  });
});
