/**
 * Job files: YAML in, a validated {@link JobSpec} out. A bad file is refused with its path, the
 * line and the field, before anything is queued.
 *
 * ```yaml
 * name: regrid-2026-11
 * class: local              # local | ssh | ec2
 * queue: default
 * command: [python3, regrid.py, --date, 2026-11-01]   # or a string for /bin/sh -c
 * workdir: /data/run1
 * env: { FOO: bar }
 * host: node1               # ssh: [user@]host[:port]
 * timeout: 3600             # seconds
 * retries: 0
 * steps: [download, regrid, upload]
 * ```
 */
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { JOB_CLASSES } from '../../actors/job.ts';
import type { JobClass, JobSpec } from '../../actors/job.ts';
import { ColonyError } from '../transport/errors.ts';

let yamlModule: typeof import('yaml') | null = null;
const yaml = () => (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));

/** A job file (or spec object) that cannot be queued. Names the file, the line and the field. */
export class JobSpecError extends ColonyError {
  constructor(
    message: string,
    /** The file (or `<spec>` for an object). */
    readonly file: string,
    /** The field at fault, or null for a file that is not YAML at all. */
    readonly field: string | null,
    /** 1-based, when known. */
    readonly line: number | null,
  ) {
    super(message);
  }
}

const FIELDS = ['name', 'class', 'queue', 'command', 'workdir', 'env', 'host', 'timeout', 'retries', 'steps'] as const;
const TOKEN = /^[A-Za-z0-9_-]+$/;
const HOST = /^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+(?::\d{1,5})?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** @default queue name */
export const DEFAULT_QUEUE = 'default';

/** Parses and validates a job file's text. `file` names it in errors. */
export function parseJobSpec(text: string, file = '<job>'): JobSpec {
  const Y = yaml();
  const lc = new Y.LineCounter();
  const doc = Y.parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const line = err.linePos?.[0]?.line ?? null;
    throw new JobSpecError(`${file}${line ? `:${line}` : ''}: malformed YAML: ${err.message.split('\n')[0]}`, file, null, line);
  }
  const lineOf = (field: string | null): number | null => {
    if (field === null) return null;
    const path = field.split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    for (let n = path.length; n > 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return lc.linePos(node.range[0]).line;
      // A key whose value is missing: point at the key itself.
      const parent = n > 1 ? doc.getIn(path.slice(0, n - 1), true) : doc.contents;
      const items = (parent as { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | null)?.items;
      const pair = items?.find((p) => p.key?.value === path[n - 1]);
      if (pair?.key?.range) return lc.linePos(pair.key.range[0]).line;
    }
    return null;
  };
  return validateJobSpec(doc.toJS(), file, lineOf);
}

/**
 * Validates a spec object (parsed YAML, or one built in code) and fills in the defaults.
 * @param lineOf where a field is in the file, for the error
 */
export function validateJobSpec(raw: unknown, file = '<spec>', lineOf: (field: string | null) => number | null = () => null): JobSpec {
  const fail = (field: string | null, msg: string): never => {
    const line = lineOf(field);
    throw new JobSpecError(`${file}${line ? `:${line}` : ''}: ${field ? `${field}: ` : ''}${msg}`, file, field, line);
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return fail(null, `a job is a mapping with ${FIELDS.join(', ')}; got ${raw === null ? 'nothing' : Array.isArray(raw) ? 'a list' : typeof raw}`);
  }
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(FIELDS as readonly string[]).includes(k)) fail(k, `unknown field; a job has ${FIELDS.join(', ')}`);
  }
  const str = (k: string, v: unknown): string => {
    if (typeof v !== 'string' || v.trim() === '') fail(k, `must be a non-empty string, got ${JSON.stringify(v)}`);
    return v as string;
  };
  const scalar = (k: string, v: unknown): string => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
    return fail(k, `must be a string or a number, got ${JSON.stringify(v)}`);
  };

  if (o.name === undefined || o.name === null) fail('name', 'is required');
  const name = str('name', o.name);

  const cls = (o.class ?? 'local') as JobClass;
  if (!JOB_CLASSES.includes(cls)) fail('class', `unknown class ${JSON.stringify(o.class)}; choose from ${JOB_CLASSES.join(', ')}`);

  const queue = o.queue === undefined || o.queue === null ? DEFAULT_QUEUE : str('queue', o.queue);
  if (!TOKEN.test(queue)) fail('queue', `'${queue}' must match ${TOKEN} (it is part of a NATS subject)`);

  if (o.command === undefined || o.command === null) fail('command', 'is required: an argv list, or a string run by /bin/sh -c');
  let command: string[] | string;
  if (typeof o.command === 'string') {
    command = str('command', o.command);
  } else if (Array.isArray(o.command)) {
    if (o.command.length === 0) fail('command', 'is an empty list');
    command = o.command.map((a, i) => scalar(`command.${i}`, a));
  } else {
    return fail('command', `must be an argv list or a string, got ${JSON.stringify(o.command)}`);
  }

  const workdir = o.workdir === undefined || o.workdir === null ? null : str('workdir', o.workdir);

  const env: Record<string, string> = {};
  if (o.env !== undefined && o.env !== null) {
    if (typeof o.env !== 'object' || Array.isArray(o.env)) fail('env', 'must be a mapping of NAME: value');
    for (const [k, v] of Object.entries(o.env as Record<string, unknown>)) {
      if (!ENV_NAME.test(k)) fail(`env.${k}`, `'${k}' is not an environment variable name`);
      env[k] = scalar(`env.${k}`, v);
    }
  }

  let host: string | null = null;
  if (o.host !== undefined && o.host !== null) {
    host = str('host', o.host);
    if (!HOST.test(host)) fail('host', `'${host}' is not [user@]host[:port]`);
  }
  if (cls === 'ssh' && host === null) fail('host', 'is required for an ssh job: [user@]host[:port]');
  if (cls !== 'ssh' && host !== null) fail('host', `is only for ssh jobs; a ${cls} job runs ${cls === 'local' ? "on the manager's host" : 'on the instance it starts'}`);

  let timeout: number | null = null;
  if (o.timeout !== undefined && o.timeout !== null) {
    if (typeof o.timeout !== 'number' || !(o.timeout > 0) || !Number.isFinite(o.timeout)) fail('timeout', `must be a number of seconds > 0, got ${JSON.stringify(o.timeout)}`);
    timeout = o.timeout as number;
  }

  let retries = 0;
  if (o.retries !== undefined && o.retries !== null) {
    if (!Number.isInteger(o.retries) || (o.retries as number) < 0) fail('retries', `must be a whole number >= 0, got ${JSON.stringify(o.retries)}`);
    retries = o.retries as number;
  }

  let steps: string[] = [];
  if (o.steps !== undefined && o.steps !== null) {
    if (!Array.isArray(o.steps)) fail('steps', 'must be a list of step names');
    steps = (o.steps as unknown[]).map((s, i) => str(`steps.${i}`, s));
  }

  return { name, class: cls, queue, command, workdir, env, host, timeout, retries, steps };
}

/** A fresh job id: the name as a subject token plus a random suffix (`regrid-2026-11-3fa9c1d2`). */
export function newJobId(name: string): string {
  const slug = name.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'job';
  return `${slug}-${randomBytes(4).toString('hex')}`;
}
