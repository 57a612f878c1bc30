/**
 * SlurmManager against a real Slurm on this machine (test/schedulers/start-slurm.sh; .ci/run
 * starts it). Skipped with a printed reason when Slurm is down, except in CI, where that fails.
 */
import { run } from '../adapters/shell-scheduler.ts';
import { SlurmManager } from '../adapters/slurm-manager.ts';
import { describeBatchScheduler } from './schedulers/batch-suite.ts';
import { slurmGate } from './schedulers/gate.ts';

describeBatchScheduler({
  title: 'SlurmManager (real Slurm)',
  scheduler: 'Slurm',
  gate: await slurmGate(),
  manager: 'slurm',
  make: (opts) => new SlurmManager(opts),
  placed: { partition: 'main', time: 600 },
  held: { sbatchFlags: ['--hold'] },
  bad: { what: 'partition', opts: { partition: 'nosuch' }, stderr: /invalid partition specified: nosuch/, short: /invalid partition/ },
  tools: { submit: 'sbatch', list: 'squeue', cancel: 'scancel' },
  taskSep: '_',
  jobOf: (w) => w.slurmJob,
  // Job ids Slurm still lists as pending, running or completing (squeue's default states).
  queueIds: async () => {
    const { stdout } = await run(['squeue', '--noheader', '--array', '--format=%F']);
    return [...new Set(stdout.split('\n').map((l) => l.trim()).filter(Boolean))];
  },
  release: async (jobId) => {
    await run(['scontrol', 'release', jobId]);
  },
});
