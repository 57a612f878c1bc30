#!/usr/bin/env node
// Start-up timings of whichever copy of Colony `import 'colony'` resolves to, one JSON line each:
//
//   node scripts/measure-startup.mjs [--runs N]                  the compiled dist/ (npm run build)
//   node --conditions=colony-source --import tsx scripts/measure-startup.mjs [--runs N]   the sources
//
// - node_floor: a bare `node -e 0` process start, median of 2N, measured in the same run;
// - startup: Cluster.start({ workers: 2 }) + everywhere + both workers answer a call, median of N;
// - addprocs_local: addprocs(LocalManager, { count: 2 }) on a running cluster with the tasks
//   loaded, until both answer, median of N.
// Each line has `floor_ms` (the bare node start) and `ratio` beside its figure.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cluster, LocalManager } from 'colony';
import { echo } from './startup-tasks.mjs';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const TASKS = new URL('./startup-tasks.mjs', import.meta.url);
const mode = import.meta.resolve('colony').includes('/dist/') ? 'dist' : 'sources';
const round = (x) => Math.round(x * 10) / 10;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function inTemp(fn) {
  const dir = await mkdtemp(join(tmpdir(), 'colony-startup-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function bareNode() {
  const t = performance.now();
  execFileSync(process.execPath, ['-e', '0']);
  return performance.now() - t;
}

async function startup() {
  return inTemp(async (stateDir) => {
    const t0 = performance.now();
    const cluster = await Cluster.start({ workers: 2, stateDir, workerOutput: 'ignore' });
    try {
      await cluster.everywhere(TASKS);
      const pids = cluster.workers();
      const answers = await Promise.all(pids.map((p) => cluster.remotecallFetch(echo, p, p)));
      if (answers.join() !== '2,3') throw new Error(`expected workers 2 and 3 to answer, got ${answers}`);
      return performance.now() - t0;
    } finally {
      await cluster.close();
    }
  });
}

async function addprocsLocal() {
  return inTemp(async (stateDir) => {
    const cluster = await Cluster.start({ workers: 0, stateDir, workerOutput: 'ignore' });
    try {
      await cluster.everywhere(TASKS);
      const t0 = performance.now();
      const pids = await cluster.addprocs(new LocalManager({ output: 'ignore' }), { count: 2 });
      const answers = await Promise.all(pids.map((p) => cluster.remotecallFetch(echo, p, p)));
      if (answers.join() !== pids.join()) throw new Error(`expected ${pids} to answer, got ${answers}`);
      return performance.now() - t0;
    } finally {
      await cluster.close();
    }
  });
}

const floors = [];
const line = (scenario, runs) => {
  const ms = median(runs);
  const floor = median(floors);
  console.log(JSON.stringify({ scenario, mode, ms: round(ms), runs_ms: runs.map(round), floor_ms: round(floor), ratio: round(ms / floor) }));
};
const runs = { startup: [], addprocs_local: [] };
// Interleaved, so a load change on the machine touches every figure alike.
for (let i = 0; i < RUNS; i++) {
  floors.push(bareNode());
  runs.startup.push(await startup());
  floors.push(bareNode());
  runs.addprocs_local.push(await addprocsLocal());
}
console.log(JSON.stringify({ scenario: 'node_floor', mode, ms: round(median(floors)), runs_ms: floors.map(round) }));
line('startup', runs.startup);
line('addprocs_local', runs.addprocs_local);
