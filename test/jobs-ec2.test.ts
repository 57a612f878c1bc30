/**
 * ec2 jobs against the local EC2 endpoint (test/schedulers/fake-ec2.ts: EC2 cannot be had here;
 * its instances run their user-data as local processes). The real @aws-sdk/client-ec2 talks to it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FAKE_CREDENTIALS, startFakeEC2 } from './schedulers/fake-ec2.ts';
import type { FakeEC2 } from './schedulers/fake-ec2.ts';
import { startJobs } from './helpers/jobs.ts';
import type { JobsContext } from './helpers/jobs.ts';
import { waitFor } from './helpers/wait.ts';

let ctx: JobsContext | null = null;
let ec2: FakeEC2 | null = null;
afterEach(async () => {
  await ctx?.close();
  await ec2?.stop();
  ctx = null;
  ec2 = null;
});

describe('jobs - ec2 (local EC2 endpoint)', () => {
  it('ec2 jobs run on instances they start, within perClass.ec2 as EC2 counts them, and each instance is terminated afterwards', async () => {
    ec2 = await startFakeEC2();
    ctx = await startJobs({
      limits: { perClass: { ec2: 1 } },
      ec2: { region: 'us-east-1', endpoint: ec2.url, credentials: FAKE_CREDENTIALS, imageId: 'ami-0123456789abcdef0', exename: process.execPath },
    }, true, true);
    const { jobs } = ctx;
    const ids = await Promise.all([1, 2].map((n) => jobs.submit({
      name: `cloud${n}`, class: 'ec2', command: `echo "::step compute"; sleep 0.3; echo '{"n": ${n}}' > "$COLONY_JOB_RESULT"`,
    })));
    const done = await Promise.all(ids.map((id) => jobs.wait(id, { timeoutMs: 60_000 })));
    expect(done.map((j) => [j.state, j.result, j.steps])).toEqual([['succeeded', { n: 1 }, ['compute']], ['succeeded', { n: 2 }, ['compute']]]);
    const instances = [...ec2.instances.values()];
    expect(instances).toHaveLength(2);
    // Each job ran on its own instance, recorded as the job's host.
    expect(done.map((j) => j.host).sort()).toEqual(instances.map((i) => i.id).sort());
    for (const i of instances) expect(i.tags).toMatchObject({ 'colony:jobs': ctx.name, 'colony:job': expect.stringMatching(/^cloud[12]-/) });
    // One at a time: the second started once the first had ended.
    const [first, second] = [...done].sort((a, b) => a.startedAt! - b.startedAt!);
    expect(second!.startedAt!).toBeGreaterThanOrEqual(first!.endedAt!);
    expect(ec2.calls).toContain('DescribeInstances');
    await waitFor(() => instances.every((i) => i.state === 'terminated'), { message: 'every instance terminated' });
    expect(ec2.calls.filter((c) => c === 'TerminateInstances')).toHaveLength(2);
  });
});
