/**
 * What-if replay for `npm run bench` (`--only whatif`; no cluster, no scheduler).
 *
 * - pool_whatif_hour: the launch latencies of the Slurm fixture (test/fixtures/logs/pool-slurm.jsonl)
 *   with an hour of demand (60 maps, one a minute, of 200 to 800 items of 100 to 900 ms, max 16
 *   workers), simulated under a policy that ticks every 20 ms (spawnIntervalMs 40: the pool's
 *   fastest tick) and under the fixture's own (200 ms ticks). Goal (issue 13): well under a
 *   second for an hour of recorded time; here: under 1 s at 20 ms ticks.
 */
import { recording, simulate } from '../actors/pool-whatif.ts';
import type { MapDemand } from '../actors/pool-whatif.ts';
import { readJsonl } from '../runtime/log/replay.ts';

type Emit = (line: Record<string, unknown>) => void;

const FIXTURE = new URL('../test/fixtures/logs/pool-slurm.jsonl', import.meta.url).pathname;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

export async function run(emit: Emit): Promise<void> {
  const rec = recording(await readJsonl(FIXTURE), 'whatif');
  const maps: MapDemand[] = Array.from({ length: 60 }, (_, k) => ({
    id: `m${k}`, items: 200 + (k % 7) * 100, itemMs: 100 + (k % 5) * 200, readyAtMs: k * 60_000, after: null, gapMs: 0,
  }));
  const hour = { ...rec, maps, recorded: { ...rec.recorded, endMs: 3_600_000 } };
  const fast = { ...rec.policy, max: 16, spawnIntervalMs: 40, maxQueued: 4, idleMs: 5000 };
  const slow = { ...rec.policy, max: 16 };
  const time = (p: typeof fast) => {
    simulate(hour, p, { seed: 1 }); // warm
    const t0 = performance.now();
    const r = simulate(hour, p, { seed: 1 });
    return { ms: performance.now() - t0, r };
  };
  const a = time(fast);
  const b = time(slow);
  emit({
    scenario: 'pool_whatif_hour',
    simulated_s: round(a.r.endMs / 1000, 0),
    items: maps.reduce((n, m) => n + m.items, 0),
    tick_20ms_ms: round(a.ms, 1),
    tick_200ms_ms: round(b.ms, 1),
    jobs_20ms: a.r.jobs,
    jobs_200ms: b.r.jobs,
    goal: 'an hour of recorded demand simulated in under 1000 ms at the pool\'s fastest tick (20 ms)',
    ok: a.ms < 1000 && !a.r.truncated,
  });
}
