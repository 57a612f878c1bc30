/**
 * Starting and stopping a local nats-server with JetStream, for tests, the demo, benchmarks and
 * single-machine clusters.
 *
 * @example
 * ```ts
 * await using server = await NatsServer.start({ storeDir: '/tmp/colony-js' });
 * const nc = await connect({ servers: server.url });
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { mkdir, open, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { delimiter, join, resolve } from 'node:path';

/** Options of {@link NatsServer.start}. */
export interface NatsServerOptions {
  /** JetStream store directory (created if missing). */
  storeDir: string;
  /**
   * Directory for the generated config file, the ports file and the server log.
   * @default storeDir
   */
  configDir?: string;
  /**
   * Address the client port listens on.
   * @default '127.0.0.1' (loopback only)
   */
  host?: string;
  /**
   * Client port. 0 or undefined picks a random free port.
   * @default 0
   */
  port?: number;
  /**
   * With `password`, written as `authorization { user, password }`. nats-server treats a
   * password starting with `$2` as a bcrypt hash.
   */
  user?: string;
  password?: string;
  /**
   * Largest message the server accepts, in bytes.
   * @default 8 * 1024 * 1024
   */
  maxPayload?: number;
  /**
   * nats `max_pending`: bytes buffered for one slow client before it is cut off.
   * @default 256 * 1024 * 1024
   */
  maxPending?: number;
  /** Extra lines appended verbatim to the config. */
  extraConfig?: string;
  /**
   * How long the server may take to accept connections.
   * @default 10000
   */
  readyTimeoutMs?: number;
}

/** How a server process ended. */
export interface NatsServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether {@link NatsServer.stop} asked for it. */
  stopped: boolean;
  /** `killed by SIGKILL`, `exited with code 1`. */
  why: string;
}

/** @default for {@link NatsServerOptions.host} */
export const DEFAULT_NATS_HOST = '127.0.0.1';
/** @default for {@link NatsServerOptions.maxPayload} */
export const DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024;
/** @default for {@link NatsServerOptions.maxPending} */
export const DEFAULT_MAX_PENDING = 256 * 1024 * 1024;

const READY_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 20;
const STOP_GRACE_MS = 5_000;
const CONFIG_FILE = 'nats-server.conf';
const LOG_FILE = 'nats-server.log';

const INSTALL_HINT = 'sudo apt-get install -y nats-server';

/** The nats-server binary could not be found. */
export class NatsServerMissingError extends Error {
  constructor(options?: { cause?: unknown }) {
    super(`nats-server was not found on PATH or in /usr/sbin; install it with: ${INSTALL_HINT}`, options);
    this.name = 'NatsServerMissingError';
  }
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Path of the nats-server binary: `$COLONY_NATS_SERVER` if set, else the first match on PATH,
 * in /usr/sbin or in /usr/local/bin.
 * @throws NatsServerMissingError when none is found.
 */
export function findNatsServer(): string {
  const override = process.env.COLONY_NATS_SERVER;
  if (override) {
    // An explicit choice that is wrong should not silently fall back to another binary.
    if (isExecutableFile(override)) return resolve(override);
    throw new Error(`COLONY_NATS_SERVER=${override} is not an executable file`);
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/bin']) {
    const candidate = join(dir, 'nats-server');
    if (isExecutableFile(candidate)) return resolve(candidate);
  }
  throw new NatsServerMissingError();
}

/**
 * A random secret from the OS CSPRNG, as url-safe base64 (no padding), so it can go into
 * configs, URLs and environment variables unquoted.
 * @param bytes entropy in bytes; @default 24
 */
export function randomSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

/** A string literal in nats config syntax; its lexer knows only these escapes. */
function confString(value: string, field: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(value)) {
    throw new Error(`NatsServerOptions.${field} contains a control character the nats config cannot express`);
  }
  const escaped = value
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return `"${escaped}"`;
}

function checkInt(value: number, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`NatsServerOptions.${field} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

function buildConfig(opts: NatsServerOptions, storeDir: string, configDir: string): string {
  const port = checkInt(opts.port ?? 0, 'port', 0, 65535);
  const maxPayload = checkInt(opts.maxPayload ?? DEFAULT_MAX_PAYLOAD, 'maxPayload', 1);
  const maxPending = checkInt(opts.maxPending ?? DEFAULT_MAX_PENDING, 'maxPending', 1);
  if ((opts.user === undefined) !== (opts.password === undefined)) {
    throw new Error('NatsServerOptions.user and NatsServerOptions.password must be set together');
  }
  const lines = [
    '# Generated by colony runtime/nats-server.ts; holds credentials, keep it private.',
    `host: ${confString(opts.host ?? DEFAULT_NATS_HOST, 'host')}`,
    // -1 asks the server for a random port; the ports file tells which one it got.
    `port: ${port === 0 ? -1 : port}`,
    `ports_file_dir: ${confString(configDir, 'configDir')}`,
    `max_payload: ${maxPayload}`,
    `max_pending: ${maxPending}`,
    'write_deadline: "10s"',
    'jetstream {',
    `  store_dir: ${confString(storeDir, 'storeDir')}`,
    '  max_memory_store: 256MB',
    '  max_file_store: 10GB',
    '}',
  ];
  if (opts.user !== undefined && opts.password !== undefined) {
    lines.push(
      'authorization {',
      `  user: ${confString(opts.user, 'user')}`,
      `  password: ${confString(opts.password, 'password')}`,
      '}',
    );
  }
  if (opts.extraConfig) lines.push(opts.extraConfig);
  return lines.join('\n') + '\n';
}

/** Servers of this process that have not exited; killed if the process exits first. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is the only thing that surely lands in time.
  process.on('exit', () => {
    for (const child of running) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolvePromise(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The port from `<exe>_<pid>.ports`, or undefined while it is not written yet. */
async function readPortsFile(dir: string, pid: number): Promise<number | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const name = names.find((n) => n.endsWith(`_${pid}.ports`));
  if (!name) return undefined;
  try {
    const ports = JSON.parse(await readFile(join(dir, name), 'utf8')) as { nats?: string[] };
    const url = ports.nats?.[0];
    if (!url) return undefined;
    return Number(new URL(url).port) || undefined;
  } catch {
    return undefined; // caught half-written
  }
}

async function readTail(file: string, maxChars = 4_000): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.length > maxChars ? '…' + text.slice(-maxChars) : text;
  } catch {
    return '';
  }
}

function clientHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * A nats-server child process with JetStream enabled.
 *
 * The child does not keep the Node process alive; stop it with {@link NatsServer.stop} or
 * `await using`. If this process exits with servers still running, they are SIGKILLed.
 */
export class NatsServer {
  /** Client URL, e.g. `nats://127.0.0.1:4222`. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  /** The generated config file (mode 0600). */
  readonly configFile: string;
  /** stdout and stderr of the server. */
  readonly logFile: string;

  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #exit: Promise<NatsServerExit>;
  #stopping: Promise<void> | undefined;

  private constructor(
    child: ChildProcess,
    exited: Promise<void>,
    fields: { url: string; port: number; storeDir: string; configFile: string; logFile: string },
  ) {
    this.#child = child;
    this.#exited = exited;
    this.#exit = exited.then(() => {
      const { exitCode: code, signalCode: signal } = child;
      const why = signal ? `killed by ${signal}` : code !== null ? `exited with code ${code}` : 'could not be spawned';
      return { code, signal, stopped: this.#stopping !== undefined, why };
    });
    this.pid = child.pid!;
    this.url = fields.url;
    this.port = fields.port;
    this.storeDir = fields.storeDir;
    this.configFile = fields.configFile;
    this.logFile = fields.logFile;
  }

  /**
   * Writes a config, spawns `nats-server -c <config>` and resolves once the client port
   * accepts TCP connections.
   * @throws NatsServerMissingError if the binary is missing; an Error with the server log if it
   * exits early or is not ready within 10 s.
   */
  static async start(opts: NatsServerOptions): Promise<NatsServer> {
    const binary = findNatsServer();
    const storeDir = resolve(opts.storeDir);
    const configDir = resolve(opts.configDir ?? storeDir);
    const host = opts.host ?? DEFAULT_NATS_HOST;
    const config = buildConfig(opts, storeDir, configDir);

    await mkdir(storeDir, { recursive: true });
    await mkdir(configDir, { recursive: true });
    const configFile = join(configDir, CONFIG_FILE);
    const logFile = join(configDir, LOG_FILE);
    // Recreate rather than overwrite: writeFile's mode applies only to new files, and an older
    // world-readable file must not receive the password.
    await unlink(configFile).catch(() => undefined);
    await writeFile(configFile, config, { mode: 0o600, flag: 'wx' });

    // Logging to a file, not a pipe: nobody drains a pipe after startup, and a full pipe would
    // block the server.
    const log = await open(logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(binary, ['-c', configFile], { stdio: ['ignore', log.fd, log.fd] });
    } finally {
      await log.close();
    }

    let exitInfo: string | undefined;
    const exited = new Promise<void>((resolveExit) => {
      child.once('error', (err) => {
        exitInfo ??= `failed to spawn ${binary}: ${err.message}`;
        running.delete(child);
        resolveExit();
      });
      child.once('exit', (code, signal) => {
        exitInfo ??= signal ? `killed by ${signal}` : `exited with code ${code}`;
        running.delete(child);
        resolveExit();
      });
    });
    installExitHook();
    if (child.pid !== undefined) running.add(child);
    child.unref();

    const fail = async (why: string): Promise<never> => {
      child.kill('SIGKILL');
      await exited;
      const tail = await readTail(logFile);
      throw new Error(`nats-server (${binary}, config ${configFile}) ${why}${tail ? `:\n${tail}` : ''}`);
    };

    const readyTimeout = opts.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const deadline = Date.now() + readyTimeout;
    const connectHost = clientHost(host);
    let port: number | undefined;
    for (;;) {
      if (exitInfo !== undefined) return fail(`${exitInfo} during startup`);
      if (child.pid !== undefined) {
        port ??= await readPortsFile(configDir, child.pid);
        if (port !== undefined && (await canConnect(connectHost, port))) break;
      }
      if (Date.now() > deadline) {
        return fail(`was not accepting connections after ${readyTimeout} ms`);
      }
      await sleep(READY_POLL_MS);
    }

    return new NatsServer(child, exited, {
      url: `nats://${urlHost(connectHost)}:${port}`,
      port,
      storeDir,
      configFile,
      logFile,
    });
  }

  /** Resolves when the server process has ended, however it ended. */
  exited(): Promise<NatsServerExit> {
    return this.#exit;
  }

  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (!running.has(this.#child)) return this.#exited;
      this.#child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((r) => {
        timer = setTimeout(() => {
          this.#child.kill('SIGKILL');
          r();
        }, STOP_GRACE_MS);
      });
      await Promise.race([this.#exited, killed]);
      clearTimeout(timer);
      await this.#exited;
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
