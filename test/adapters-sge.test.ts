/**
 * SGEManager against a real Grid Engine on this machine (test/schedulers/start-sge.sh; .ci/run
 * starts it). Skipped with a printed reason when Grid Engine is down, except in CI, where that fails.
 */
import { SGEManager } from '../adapters/sge-manager.ts';
import { run } from '../adapters/shell-scheduler.ts';
import { describeBatchScheduler } from './schedulers/batch-suite.ts';
import { sgeGate } from './schedulers/gate.ts';

describeBatchScheduler({
  title: 'SGEManager (real Grid Engine)',
  scheduler: 'Grid Engine',
  gate: await sgeGate(),
  manager: 'sge',
  make: (opts) => new SGEManager(opts),
  placed: { queue: 'all.q', walltime: 600 },
  held: { qsubFlags: ['-h'] },
  bad: { what: 'queue', opts: { queue: 'nosuch.q' }, stderr: /unknown queue "nosuch.q"/, short: /unknown queue/ },
  tools: { submit: 'qsub', list: 'qstat', cancel: 'qdel' },
  taskSep: '.',
  jobOf: (w) => w.sgeJob,
  // Job ids Grid Engine still lists (running, pending or in error).
  queueIds: async () => {
    const { stdout } = await run(['qstat', '-xml']);
    return [...stdout.matchAll(/<JB_job_number>(\d+)<\/JB_job_number>/g)].map((m) => m[1]!);
  },
  release: async (jobId) => {
    await run(['qrls', jobId]);
  },
});
