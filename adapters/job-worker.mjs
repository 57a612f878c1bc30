#!/usr/bin/env node
// The entry of a worker started by a scheduler job (or an EC2 instance):
//
//   node job-worker.mjs --announce colony.<c>.adapter.<id> -- worker --nats URL --name C --token T ...
//
// It tells the manager "this job runs" on the announce subject and waits for the answer: the
// manager hands the worker's config to the driver first, so the driver always expects a worker
// before it registers, and the start timeout counts from the moment the job runs. Then this same
// process becomes `colony worker` (one node start, not two). If the manager says no (the launch
// was cancelled), the job ends at once. Credentials come from COLONY_NATS_USER/PASSWORD.
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { connect } from '@nats-io/transport-node';
import { loadCli } from '../runtime/cli/load-cli.mjs';

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const own = sep < 0 ? argv : argv.slice(0, sep);
const workerArgs = sep < 0 ? [] : argv.slice(sep + 1);
const opt = (args, name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const subject = opt(own, '--announce');
const url = opt(workerArgs, '--nats');
const token = opt(workerArgs, '--token');
const graceMs = Number(opt(workerArgs, '--grace') ?? 30_000);
if (!subject || !url || !token || workerArgs[0] !== 'worker') {
  process.stderr.write('usage: job-worker.mjs --announce SUBJECT -- worker --nats URL --token T [...]\n');
  process.exit(2);
}

const nc = await connect({
  servers: url.split(',').map((s) => s.trim()),
  user: process.env.COLONY_NATS_USER,
  pass: process.env.COLONY_NATS_PASSWORD,
  name: `colony-job-${token}`,
  timeout: 5000,
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
}).catch((e) => {
  process.stderr.write(`colony job: cannot connect to NATS at ${url}: ${e.message}\n`);
  process.exit(1);
});

// Load the worker's code while the announcement is in flight: most of a worker's start is
// module loading, and the manager's answer needs none of it. Its heartbeat thread starts too, as
// runtime/cli/colony.mjs does it.
const hb = new Worker(new URL('../runtime/process/heartbeat-thread.mjs', import.meta.url), { execArgv: [] });
hb.unref();
globalThis[Symbol.for('colony.heartbeatThread')] = hb;
const loading = loadCli();
loading.catch(() => undefined);

const body = JSON.stringify({ token, host: hostname(), ospid: process.pid });
const deadline = Date.now() + graceMs;
let reply = null;
while (!reply) {
  try {
    const m = await nc.request(subject, body, { timeout: 2000 });
    reply = JSON.parse(new TextDecoder().decode(m.data));
  } catch (e) {
    // No manager yet, or it is reconnecting: ask again until the grace period is over.
    if (Date.now() > deadline) {
      process.stderr.write(`colony job: no answer on ${subject} for ${graceMs} ms (${e.message}); exiting\n`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
await nc.close();
if (!reply.go) {
  process.stderr.write(`colony job: not starting the worker: ${reply.reason ?? 'the launch was cancelled'}\n`);
  process.exit(0);
}

// Become `colony worker`, as runtime/cli/colony.mjs would.
process.argv = [process.argv[0], fileURLToPath(new URL('../runtime/cli/colony.mjs', import.meta.url)), ...workerArgs];
const { main } = await loading;
await main(workerArgs);
