/**
 * HTCondorManager, ScyldManager and EC2Manager against FAKES: HTCondor, Scyld and EC2 cannot be
 * had here. The fake condor_submit/condor_q/condor_rm and bpsh/bpstat (test/schedulers/fake-bin)
 * print the real tools' formats and run jobs as local processes; the fake EC2 endpoint
 * (test/schedulers/fake-ec2.ts) speaks EC2's query API to the real @aws-sdk/client-ec2 and runs
 * each instance's user-data as a local process.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EC2Manager } from '../adapters/ec2-manager.ts';
import { HTCondorManager } from '../adapters/htcondor-manager.ts';
import { ScyldManager } from '../adapters/scyld-manager.ts';
import { run } from '../adapters/shell-scheduler.ts';
import { whereAmI } from './fixtures/adapter-tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { processAlive, waitFor } from './helpers/wait.ts';
import { FAKE_CREDENTIALS, startFakeEC2 } from './schedulers/fake-ec2.ts';
import type { FakeEC2 } from './schedulers/fake-ec2.ts';
import { FAKE_BIN } from './schedulers/gate.ts';
import { ADAPTER_TASKS, adapterEvents, processesWith, spy } from './schedulers/story.ts';

let tc: TestCluster;
let spool: string;
beforeAll(async () => {
  spool = await mkdtemp(join(tmpdir(), 'colony-fake-condor-'));
  process.env.PATH = `${FAKE_BIN}:${process.env.PATH}`;
  process.env.FAKE_CONDOR_SPOOL = spool;
  tc = await startCluster({ workers: 0 });
  await tc.cluster.everywhere(ADAPTER_TASKS);
});
afterAll(async () => {
  await tc?.close();
  if (spool) await rm(spool, { recursive: true, force: true });
});

/** `cluster.proc` ids the fake condor_q lists. */
async function condorQueue(): Promise<string[]> {
  const { stdout } = await run(['condor_q', '-af', 'ClusterId', 'ProcId']);
  return stdout.split('\n').filter(Boolean).map((l) => l.trim().replace(' ', '.'));
}

describe('HTCondorManager (against a fake HTCondor)', () => {
  it('addprocs - a cluster of 2 procs comes up, answers calls, and leaves condor_q on rmprocs', async () => {
    const { cluster } = tc;
    const condor = spy(new HTCondorManager({ requestMemory: '1GB', jobDir: join(tc.stateDir, 'jobs') }));
    const pids = await cluster.addprocs(condor, { count: 2 });
    const jobId = condor.configs[0]!.schedulerJobId!.split('.')[0]!;
    expect(condor.configs.map((c) => c.schedulerJobId).sort()).toEqual([`${jobId}.0`, `${jobId}.1`]);
    expect((await condorQueue()).filter((id) => id.startsWith(`${jobId}.`))).toHaveLength(2);
    for (const p of pids) expect((await cluster.remotecallFetch(whereAmI, p)).hasPassword).toBe(true);
    expect(processesWith(condor.params!.env.COLONY_NATS_PASSWORD!)).toEqual([]);
    await cluster.rmprocs(pids);
    await waitFor(async () => !(await condorQueue()).some((id) => id.startsWith(`${jobId}.`)), { message: 'procs to leave condor_q' });
    await waitFor(async () => (await adapterEvents(cluster, condor.id)).filter((e) => e.type === 'adapter.exited').length === 2, { message: 'adapter.exited x2' });
    const h = await adapterEvents(cluster, condor.id);
    expect(h.map((e) => e.to)).toEqual(['submitting', 'queued', 'running', 'running', 'running', 'exited']);
    expect(h.filter((e) => e.type === 'adapter.exited').map((e) => e.data.code)).toEqual([0, 0]);
  });

  it('addprocs - procs kept Idle past the start timeout still come in when they run', async () => {
    await using local = await startCluster({ workers: 0, workerStartTimeoutMs: 4000 });
    process.env.FAKE_CONDOR_IDLE_MS = '5000';
    try {
      const condor = new HTCondorManager({ jobDir: join(local.stateDir, 'jobs') });
      const t0 = Date.now();
      const pids = await local.cluster.addprocs(condor, { count: 1 });
      expect(Date.now() - t0).toBeGreaterThan(5000);
      await local.cluster.rmprocs(pids);
    } finally {
      delete process.env.FAKE_CONDOR_IDLE_MS;
    }
  });

  it('addprocs - a submit file condor_submit refuses gives a LaunchError with its stderr', async () => {
    const condor = new HTCondorManager({ requirements: 'False', jobDir: join(tc.stateDir, 'jobs') });
    const err = await tc.cluster.addprocs(condor, { count: 1 }).then(() => null, (e: Error & Record<string, unknown>) => e);
    expect(err).toMatchObject({ name: 'LaunchError', manager: 'condor', code: 1 });
    expect(err!.stderr).toMatch(/requirements expression is False/);
  });
});

describe('ScyldManager (against a fake bpsh/bpstat)', () => {
  it('addprocs - 3 workers go round-robin over the nodes bpstat says are up, and leave on rmprocs', async () => {
    const { cluster } = tc;
    process.env.FAKE_SCYLD_DOWN = '1';
    try {
      const scyld = spy(new ScyldManager({ output: 'ignore' }));
      const pids = await cluster.addprocs(scyld, { count: 3 });
      expect(scyld.configs.map((c) => c.host).sort()).toEqual(['n0', 'n2', 'n3']);
      const where = await Promise.all(pids.map((p) => cluster.remotecallFetch(whereAmI, p)));
      expect(where.map((w) => w.pid)).toEqual(pids);
      expect(processesWith(scyld.params!.env.COLONY_NATS_PASSWORD!)).toEqual([]);
      await cluster.rmprocs(pids);
      for (const w of where) expect(processAlive(w.ospid)).toBe(false);
      // The manager records each unit's end when it sees its bpsh exit, which may come just after rmprocs.
      await waitFor(async () => (await adapterEvents(cluster, scyld.id)).filter((e) => e.type === 'adapter.exited').length === 3, { message: 'adapter.exited x3' });
      const h = await adapterEvents(cluster, scyld.id);
      expect(h.at(-1)).toMatchObject({ type: 'adapter.exited', to: 'exited' });
    } finally {
      delete process.env.FAKE_SCYLD_DOWN;
    }
  });

  it('addprocs - a worker that dies before it registers fails the launch with its exit code and stderr', async () => {
    const scyld = new ScyldManager({ output: 'ignore', exeflags: ['-e', 'console.error("boom: cannot start"); process.exit(3)'] });
    const err = await tc.cluster.addprocs(scyld, { count: 1 }).then(() => null, (e: Error & Record<string, unknown>) => e);
    expect(err).toMatchObject({ name: 'LaunchError', manager: 'scyld', code: 3, stderr: 'boom: cannot start' });
    expect(err!.message).toMatch(/ended before its worker registered \(exited, exit code 3\)/);
  });

  it('addprocs - with every node down, a LaunchError says so', async () => {
    process.env.FAKE_SCYLD_DOWN = '0,1,2,3';
    try {
      const err = await tc.cluster.addprocs(new ScyldManager({ output: 'ignore' }), { count: 1 }).then(() => null, (e: Error) => e);
      expect(err).toMatchObject({ name: 'LaunchError', manager: 'scyld' });
      expect(err!.message).toMatch(/no compute node is up/);
    } finally {
      delete process.env.FAKE_SCYLD_DOWN;
    }
  });
});

describe('EC2Manager (real @aws-sdk/client-ec2 against a fake EC2 endpoint)', () => {
  let ec2: FakeEC2;
  beforeAll(async () => {
    ec2 = await startFakeEC2();
  });
  afterAll(async () => {
    await ec2?.stop();
  });
  const manager = (imageId = 'ami-0123456789abcdef0') =>
    spy(new EC2Manager({ region: 'us-east-1', imageId, instanceType: 't3.small', subnetId: 'subnet-1', keyName: 'ops', tags: { team: 'colony' }, endpoint: ec2.url, credentials: FAKE_CREDENTIALS, exename: process.execPath }));

  it('addprocs - one instance per worker, counted with DescribeInstances, terminated on rmprocs', async () => {
    const { cluster } = tc;
    const m = manager();
    const pids = await cluster.addprocs(m, { count: 2 });
    const ids = m.configs.map((c) => c.schedulerJobId!);
    expect(ids.every((id) => /^i-[0-9a-f]{17}$/.test(id))).toBe(true);
    for (const id of ids) {
      const inst = ec2.instances.get(id)!;
      expect(inst).toMatchObject({ imageId: 'ami-0123456789abcdef0', instanceType: 't3.small', subnetId: 'subnet-1', keyName: 'ops', state: 'running' });
      expect(inst.tags).toMatchObject({ team: 'colony', 'colony:adapter': m.id, 'colony:cluster': cluster.name });
    }
    for (const p of pids) expect((await cluster.remotecallFetch(whereAmI, p)).hasPassword).toBe(true);
    expect(ec2.calls.filter((c) => c === 'RunInstances')).toHaveLength(2);
    expect(ec2.calls).toContain('DescribeInstances');

    await cluster.rmprocs(pids);
    await waitFor(() => ids.every((id) => ec2.instances.get(id)!.state === 'terminated'), { message: 'instances terminated' });
    expect(ec2.calls).toContain('TerminateInstances');
    await waitFor(async () => (await adapterEvents(cluster, m.id)).filter((e) => e.type === 'adapter.exited').length === 2, { message: 'adapter.exited x2' });
    expect((await adapterEvents(cluster, m.id)).at(-1)).toMatchObject({ to: 'exited' });
  });

  it('addprocs - an AMI id EC2 rejects gives a LaunchError with the API error', async () => {
    const m = manager('not-an-ami');
    const err = await tc.cluster.addprocs(m, { count: 1 }).then(() => null, (e: Error & Record<string, unknown>) => e);
    expect(err).toMatchObject({ name: 'LaunchError', manager: 'ec2', code: 400 });
    expect(err!.stderr).toMatch(/InvalidAMIID\.Malformed/);
  });
});
