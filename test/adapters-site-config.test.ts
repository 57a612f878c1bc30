/**
 * colony.yaml site defaults per manager, and `colony up --manager X --count N` on top of them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SGEManager } from '../adapters/sge-manager.ts';
import { SlurmManager } from '../adapters/slurm-manager.ts';
import { SSHManager } from '../adapters/ssh-manager.ts';
import { managerFromConfig, managerOptions, parseSiteConfig, siteCount } from '../adapters/site-config.ts';
import { bringUp } from '../runtime/cli/cli-up.ts';
import { whereAmI } from './fixtures/adapter-tasks.ts';
import { waitFor } from './helpers/wait.ts';
import { sgeGate } from './schedulers/gate.ts';
import { ADAPTER_TASKS, adapterEvents } from './schedulers/story.ts';

const SITE = `
# The site's defaults: an administrator writes this once.
default: sge
managers:
  sge:
    queue: all.q
    walltime: "01:00:00"
    coresPerNode: 4
    count: 2
  slurm: { partition: main, time: "00:30:00", coresPerNode: 2 }
  ssh:
    machines: [node1, "alice@node2:2222"]
    sshflags: [-i, /etc/colony/id_ed25519]
`;

describe('site config (colony.yaml)', () => {
  it('per-manager defaults: queue, walltime, cores per node, partition, machines', async () => {
    const site = parseSiteConfig(SITE, 'site.yaml');
    expect(site.default).toBe('sge');
    expect(siteCount('sge', site)).toBe(2);
    expect(managerOptions('sge', site)).toEqual({ queue: 'all.q', walltime: '01:00:00', pe: { name: 'smp', slots: 4 } });
    expect(managerOptions('slurm', site, { time: 60 })).toEqual({ partition: 'main', time: 60, cpusPerTask: 2 });
    const sge = await managerFromConfig('gridengine', site);
    expect(sge).toBeInstanceOf(SGEManager);
    expect((sge as SGEManager).headerLines({ name: 'n', dir: '/d', script: '/d/s', submitFile: '/d/s', count: 1, cluster: 'c' })).toEqual(
      expect.arrayContaining(['#$ -q all.q', '#$ -l h_rt=01:00:00', '#$ -pe smp 4']),
    );
    expect(await managerFromConfig('slurm', site)).toBeInstanceOf(SlurmManager);
    const ssh = (await managerFromConfig('ssh', site)) as SSHManager;
    expect(ssh).toBeInstanceOf(SSHManager);
    expect(ssh.options.machines).toEqual(['node1', 'alice@node2:2222']);
  });

  it('bad input is refused with the file and the line or the field named', () => {
    expect(() => parseSiteConfig('managers:\n  sge: [unclosed\n', 'a.yaml')).toThrow(/a\.yaml: malformed YAML \(line \d+/);
    expect(() => parseSiteConfig('managers:\n  sge:\n    qeue: all.q\n', 'b.yaml')).toThrow(/b\.yaml: managers\.sge\.qeue: unknown option; sge takes .*queue/);
    expect(() => parseSiteConfig('managers:\n  pbs: {}\n', 'c.yaml')).toThrow(/c\.yaml: managers\.pbs: unknown manager 'pbs'/);
    expect(() => parseSiteConfig('managers:\n  sge: { count: 0 }\n', 'd.yaml')).toThrow(/managers\.sge\.count must be a whole number >= 1/);
    expect(() => parseSiteConfig('queue: all.q\n', 'e.yaml')).toThrow(/e\.yaml: unknown key 'queue'/);
    expect(parseSiteConfig('', 'empty.yaml')).toEqual({ source: 'empty.yaml', default: null, managers: {}, pools: {} });
  });
});

describe('colony up', () => {
  it('colony up --manager local --count 2 brings up a cluster whose workers answer; close removes them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'colony-up-'));
    try {
      const lines: string[] = [];
      const u = await bringUp(['--manager', 'local', '--count', '2', '--state-dir', dir, '--set', 'output=ignore'], (l) => lines.push(l));
      try {
        expect(u.pids).toEqual([2, 3]);
        await u.cluster.everywhere(ADAPTER_TASKS);
        expect((await u.cluster.remotecallFetch(whereAmI, 3)).pid).toBe(3);
        expect(lines.join('\n')).toMatch(/up: 2 worker\(s\) through local, pids 2, 3/);
      } finally {
        await u.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('colony up with an unknown manager or a bad count says which', async () => {
    await expect(bringUp(['--manager', 'pbs'])).rejects.toThrow(/unknown manager 'pbs'/);
    await expect(bringUp(['--manager', 'local', '--count', 'many'])).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'count' });
  });
});

const sge = await sgeGate();

describe.runIf(sge.run)('colony up (real Grid Engine)', () => {
  it('colony up --manager sge with the site file: its queue and count; close leaves qstat empty of its job', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'colony-up-sge-'));
    const config = join(dir, 'colony.yaml');
    await writeFile(config, `default: sge\nmanagers:\n  sge:\n    queue: all.q\n    count: 2\n    jobDir: ${join(dir, 'jobs')}\n`);
    try {
      const u = await bringUp(['--config', config, '--state-dir', dir], () => undefined);
      let jobId = '';
      try {
        expect(u.manager.name).toBe('sge');
        expect(u.pids).toHaveLength(2);
        const h = await adapterEvents(u.cluster, (u.manager as SGEManager).id);
        jobId = String(h.find((e) => e.type === 'adapter.queued')!.data.jobId);
      } finally {
        await u.close();
      }
      const { run } = await import('../adapters/shell-scheduler.ts');
      await waitFor(async () => !(await run(['qstat', '-xml'])).stdout.includes(`<JB_job_number>${jobId}</JB_job_number>`), { timeoutMs: 30_000, message: `job ${jobId} to leave qstat` });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
