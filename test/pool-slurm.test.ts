/**
 * Elastic pools through a real Slurm (test/schedulers/start-slurm.sh; .ci/run starts it).
 * Skipped with a printed reason when Slurm is down, except in CI, where that fails.
 */
import { run } from '../adapters/shell-scheduler.ts';
import { SlurmManager } from '../adapters/slurm-manager.ts';
import { slurmGate } from './schedulers/gate.ts';
import { describePoolScheduler } from './schedulers/pool-suite.ts';

describePoolScheduler({
  title: 'pool over SlurmManager (real Slurm)',
  scheduler: 'Slurm',
  gate: await slurmGate(),
  make: (opts) => new SlurmManager(opts),
  placed: { partition: 'main', time: 600 },
  shortWalltime: (s) => ({ partition: 'main', time: s }),
  held: { sbatchFlags: ['--hold'] },
  bad: { opts: { partition: 'nosuch' }, stderr: /invalid partition specified: nosuch/ },
  tools: { submit: 'sbatch', list: 'squeue' },
  queueIds: async () => {
    const { stdout } = await run(['squeue', '--noheader', '--array', '--format=%F']);
    return [...new Set(stdout.split('\n').map((l) => l.trim()).filter(Boolean))];
  },
});
