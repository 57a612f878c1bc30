/**
 * Checks a deployed Colony cluster end to end, as its driver: connects over TLS with the driver's
 * credentials, waits for workers to join, calls each one, has one worker fetch a value from
 * another, builds and reads a distributed array across them, and prints one JSON line.
 *
 * @example
 * ```sh
 * COLONY_NATS_CA=deploy/secrets/certs/ca.pem node runtime/cli/colony.mjs run deploy/check/check.ts \
 *   --nats tls://localhost:4222 --name prod --creds deploy/secrets/driver.json --workers 2
 * ```
 * Exits 0 when every step worked, 1 otherwise (the line then has `error`).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Cluster } from '../../runtime/index.ts';
import { fetchFrom, hello } from './tasks.ts';

const { values } = parseArgs({
  options: {
    nats: { type: 'string', default: process.env.COLONY_NATS_URL },
    name: { type: 'string', default: 'prod' },
    creds: { type: 'string' },
    workers: { type: 'string', default: '1' },
    replicas: { type: 'string', default: '3' },
    timeout: { type: 'string', default: '60000' },
  },
});
const t0 = Date.now();
const report: Record<string, unknown> = { name: values.name };
let cluster: Cluster | null = null;
try {
  if (!values.nats) throw new Error('pass --nats URL (or set COLONY_NATS_URL)');
  let user = process.env.COLONY_NATS_USER;
  let password = process.env.COLONY_NATS_PASSWORD;
  if (values.creds) ({ user, password } = JSON.parse(await readFile(values.creds, 'utf8')) as { user: string; password: string });
  cluster = await Cluster.start({ nats: values.nats, name: values.name, user, password, retention: { replicas: Number(values.replicas) } });
  const want = Number(values.workers);
  const deadline = Date.now() + Number(values.timeout);
  const joined = () => cluster!.workers().filter((p) => p !== 1);
  while (joined().length < want) {
    if (Date.now() > deadline) throw new Error(`${joined().length} of ${want} worker(s) joined within ${values.timeout} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const pids = joined();
  await cluster.everywhere(new URL('./tasks.ts', import.meta.url));
  report.workers = await Promise.all(pids.map((pid) => cluster!.remotecallFetch(hello, pid)));
  // A value held by the first worker, fetched by the last: a call between two workers.
  const held = cluster.remotecall(hello, pids[0]!);
  report.peerFetch = await cluster.remotecallFetch(fetchFrom, pids[pids.length - 1]!, held);
  await held.free();
  const d = await cluster.darray.fill(Float64Array, 2, [pids.length * 1000], { procs: pids });
  report.darraySum = (await d.toArray()).reduce((a, b) => a + b, 0);
  await d.free();
  report.events = (await cluster.events.history('worker.>')).length;
  report.ok = true;
} catch (e) {
  report.ok = false;
  report.error = (e as Error).message;
} finally {
  report.ms = Date.now() - t0;
  await cluster?.close().catch((e) => { report.closeError = (e as Error).message; });
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exitCode = report.ok ? 0 : 1;
