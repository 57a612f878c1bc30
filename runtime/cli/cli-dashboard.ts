/**
 * `colony dashboard [--port N] [--host ADDR] [--file LOG.jsonl]`: the web dashboard of a running
 * cluster, of the stored log of a stopped one (found like the observer commands find theirs), or
 * of a log exported with `colony export`. It reads only, as the observer role can.
 */
import { parseArgs } from 'node:util';
import { startDashboard } from '../dashboard/index.ts';
import type { Dashboard } from '../dashboard/index.ts';
import { readJsonl } from '../log/replay.ts';
import { InvalidArgumentError } from '../transport/errors.ts';
import { TARGET_OPTIONS, openTarget } from './cli-target.ts';
import type { Target } from './cli-target.ts';

export async function dashboardCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { ...TARGET_OPTIONS, port: { type: 'string' }, host: { type: 'string' }, file: { type: 'string' } },
  });
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^\d+$/.test(values.port) || port > 65535) throw new InvalidArgumentError('--port', `must be a port number 0-65535, got '${values.port}'`);
  }
  let target: Target | null = null;
  let dashboard: Dashboard;
  let what: string;
  if (values.file) {
    const envelopes = await readJsonl(values.file);
    const name = values.name ?? 'default';
    dashboard = await startDashboard({ name, envelopes }, { port, host: values.host });
    what = `${envelopes.length} events from ${values.file}`;
  } else {
    target = await openTarget(values);
    try {
      dashboard = await startDashboard({ name: target.name, offline: target.offline, nc: target.nc, journal: target.journal }, { port, host: values.host });
    } catch (e) {
      await target.close();
      throw e;
    }
    what = `cluster '${target.name}'${target.offline ? ' (stopped: its stored log)' : ''}`;
  }
  process.stdout.write(`colony dashboard of ${what}: ${dashboard.url}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    target?.nc.closed().then(() => resolve());
  });
  await dashboard.close();
  await target?.close();
}
