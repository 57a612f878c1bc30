/**
 * Elastic pools through a real Grid Engine (test/schedulers/start-sge.sh; .ci/run starts it).
 * Skipped with a printed reason when Grid Engine is down, except in CI, where that fails.
 */
import { SGEManager } from '../adapters/sge-manager.ts';
import { run } from '../adapters/shell-scheduler.ts';
import { sgeGate } from './schedulers/gate.ts';
import { describePoolScheduler } from './schedulers/pool-suite.ts';

describePoolScheduler({
  title: 'pool over SGEManager (real Grid Engine)',
  scheduler: 'Grid Engine',
  gate: await sgeGate(),
  make: (opts) => new SGEManager(opts),
  placed: { queue: 'all.q', walltime: 600 },
  shortWalltime: (s) => ({ queue: 'all.q', walltime: s }),
  held: { qsubFlags: ['-h'] },
  bad: { opts: { queue: 'nosuch.q' }, stderr: /unknown queue "nosuch.q"/ },
  tools: { submit: 'qsub', list: 'qstat' },
  queueIds: async () => {
    const { stdout } = await run(['qstat', '-xml']);
    return [...stdout.matchAll(/<JB_job_number>(\d+)<\/JB_job_number>/g)].map((m) => m[1]!);
  },
});
