/**
 * The `colony` CLI.
 *
 *   colony worker --nats URL --name C [--token T] [--creds FILE] [--grace MS]
 *   colony run script.ts            run a driver script with the TypeScript loader
 *   colony events | export | replay | status   observe the log (see USAGE)
 *   colony dashboard                the web dashboard
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { importModule } from '../process/import-module.ts';
import { DEFAULT_GRACE_MS, startWorker } from '../process/register-worker.ts';

/** The observer commands, loaded only when one runs: a worker starts faster without them. */
const observe = () => import('./cli-observe.ts');

const USAGE = `usage:
  colony worker --nats URL [--name C] [--token T] [--creds FILE] [--grace MS]
      Start a worker. Credentials come from --creds (a JSON file { user, password }) or from
      COLONY_NATS_USER / COLONY_NATS_PASSWORD. Without --token the worker joins by hand.
  colony run SCRIPT [ARGS...]
      Run a driver script (TypeScript or JavaScript).
  colony up --manager NAME --count N [--set key=value ...] | colony up --pool NAME
      Start a cluster on the site's scheduler, with defaults from colony.yaml; with --pool, an
      elastic pool from colony.yaml's pools.NAME that grows while drivers have work waiting.
  colony pool status [ID] [--watch] | colony pool pause ID [--reason TEXT] | colony pool resume ID
      The pools: state, workers, queued jobs, ready work and the last decision with its reason.
  colony events [FILTER] [--since SEQ|TIME] [--follow] [--json]
      Print events, one line each. FILTER is a subject tail: worker.*, ref.>, worker.2, > (default).
  colony replay KIND/ID [--until SEQ] [--verify] | colony replay --file LOG.jsonl [KIND/ID] [--verify]
      Fold an actor's events through its machine and print the timeline; --verify fails with
      DeterminismViolationError at the first event whose recorded state differs.
  colony status [--watch]
      Workers (pid, host, state, running task), refs by state, and other actors by state.
  colony export [FILTER] > log.jsonl
      Write events as JSON lines, for offline replay.
  colony dashboard [--port N] [--host ADDR] [--file LOG.jsonl]
      Serve the web dashboard (workers, task timeline, maps, pools, jobs, event tail) on
      127.0.0.1:8787 (a free port if that one is busy; --port 0 takes any). On another --host
      the printed URL carries a generated token that every request needs. --file draws an
      exported log.
  colony jobs serve|submit|list|show|logs|wait|cancel ...
      The job manager and its client (colony jobs help).

Observer commands find the embedded cluster of this directory through .colony/<name>/ (its stored
log is readable after it stopped), or take --nats URL --name C [--creds FILE] [--state-dir DIR].
`;

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'worker':
        return await worker(rest);
      case 'events':
        return await (await observe()).eventsCommand(rest);
      case 'export':
        return await (await observe()).exportCommand(rest);
      case 'replay':
        return await (await observe()).replayCommand(rest);
      case 'status':
        return await (await observe()).statusCommand(rest);
      case 'dashboard':
        return await (await import('./cli-dashboard.ts')).dashboardCommand(rest);
      case 'up':
        return await (await import('./cli-up.ts')).up(rest);
      case 'jobs':
        return await (await import('./cli-jobs.ts')).jobsCommand(rest);
      case 'pool':
        return await (await import('./cli-pool.ts')).poolCommand(rest);
      case 'run': {
        if (!rest[0]) throw new UsageError('colony run needs a script');
        process.argv = [process.argv[0]!, resolve(rest[0]), ...rest.slice(1)];
        await importModule(pathToFileURL(resolve(rest[0])).href);
        return;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return;
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`colony: ${e.message}\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`colony: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

class UsageError extends Error {}

async function worker(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      nats: { type: 'string' },
      name: { type: 'string', default: 'default' },
      token: { type: 'string', default: 'join' },
      creds: { type: 'string' },
      grace: { type: 'string' },
    },
  });
  if (!values.nats) throw new UsageError('colony worker needs --nats URL');
  let user = process.env.COLONY_NATS_USER;
  let password = process.env.COLONY_NATS_PASSWORD;
  if (values.creds) ({ user, password } = JSON.parse(await readFile(values.creds, 'utf8')) as { user: string; password: string });
  const opts = {
    url: values.nats,
    user,
    password,
    name: values.name!,
    token: values.token!,
    graceMs: values.grace ? Number(values.grace) : undefined,
  };
  // Connect and register while the rest of the worker's code loads: neither needs it.
  const started = startWorker(opts, opts.name, opts.token, opts.graceMs ?? DEFAULT_GRACE_MS);
  const [{ runWorker }, { parallel }, { arrays }] = await Promise.all([
    import('../process/worker-main.ts'), import('../parallel/index.ts'), import('../arrays/index.ts'),
  ]);
  await runWorker(opts, [parallel, arrays], started);
}
