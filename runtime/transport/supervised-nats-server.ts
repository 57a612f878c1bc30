/**
 * The embedded nats-server under supervision: when it dies, it is started again on the same
 * port, with the same store and credential, so every client (they reconnect on their own) finds
 * it where it was. When it cannot come back (its store is gone, its port is taken, it keeps
 * dying), the supervisor gives up and says why, once, with a {@link NatsUnreachableError}.
 *
 * @example
 * ```ts
 * const server = await SupervisedNatsServer.start({ storeDir, user, password }, {
 *   restarted: (s, ms) => console.log(`back on ${s.url} after ${ms} ms`),
 *   gaveUp: (err) => failEverything(err),
 * });
 * ```
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NatsUnreachableError } from './connection.ts';
import { NatsServer } from './nats-server.ts';
import type { NatsServerExit, NatsServerOptions } from './nats-server.ts';

/** What the supervisor tells its owner. */
export interface SupervisionHandlers {
  /** The server died and is back (a new process, same port and store) after `ms`. */
  restarted?: (server: NatsServer, ms: number) => void;
  /** The server died and will not come back; nothing is supervised any more. */
  gaveUp?: (err: NatsUnreachableError) => void;
}

/** A restart that has not succeeded this long after the death is given up (calls then fail by 5 s). */
export const RESTART_BUDGET_MS = 3_000;
/** Pause between restart attempts (a port still held by a dying process frees up quickly). */
const RESTART_PAUSE_MS = 200;
/** How long a server that exited on request waits before it counts as dead. */
const GRACEFUL_PAUSE_MS = 150;
/** More deaths than this within {@link CRASH_WINDOW_MS} is a crash loop: give up. */
const MAX_DEATHS = 5;
const CRASH_WINDOW_MS = 60_000;

function log(line: string): void {
  process.stderr.write(`colony: ${line}\n`);
}

export class SupervisedNatsServer {
  #server: NatsServer;
  #stopped = false;
  /** No new restarts (one under way goes on, so that a closing owner can still flush). */
  #released = false;
  #gaveUp: NatsUnreachableError | null = null;
  #deaths: number[] = [];
  #restarting: Promise<void> | null = null;
  readonly #opts: NatsServerOptions;
  /** Whether the store held a JetStream directory when supervision began. */
  readonly #hadJetStream: boolean;
  handlers: SupervisionHandlers;

  private constructor(server: NatsServer, opts: NatsServerOptions, handlers: SupervisionHandlers) {
    this.#server = server;
    this.#opts = { ...opts, port: server.port };
    this.handlers = handlers;
    this.#hadJetStream = existsSync(join(server.storeDir, 'jetstream'));
    this.#watch(server);
  }

  /** Starts a server (see {@link NatsServer.start}) and supervises it. */
  static async start(opts: NatsServerOptions, handlers: SupervisionHandlers = {}): Promise<SupervisedNatsServer> {
    return new SupervisedNatsServer(await NatsServer.start(opts), opts, handlers);
  }

  /** The server running now. */
  get current(): NatsServer {
    return this.#server;
  }

  get url(): string {
    return this.#server.url;
  }

  get port(): number {
    return this.#server.port;
  }

  /** OS pid of the server running now. */
  get pid(): number {
    return this.#server.pid;
  }

  get storeDir(): string {
    return this.#server.storeDir;
  }

  /** Why supervision ended, if it gave up. */
  get gaveUp(): NatsUnreachableError | null {
    return this.#gaveUp;
  }

  /**
   * Stops supervising: a death from now on is left alone (the owner is shutting down). A restart
   * already under way goes on, so the owner can still flush its log; {@link stop} ends it.
   */
  release(): void {
    this.#released = true;
  }

  /** Stops supervising and stops the server. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#restarting;
    await this.#server.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #watch(server: NatsServer): void {
    void server.exited().then((exit) => {
      if (this.#stopped || this.#released || exit.stopped || server !== this.#server) return;
      this.#restarting = this.#restart(server, exit)
        .catch((e) => log(`supervising the embedded nats-server failed: ${(e as Error).message}`))
        .finally(() => (this.#restarting = null));
    });
  }

  async #restart(dead: NatsServer, exit: NatsServerExit): Promise<void> {
    const diedAt = Date.now();
    // A server asked to stop (Ctrl-C reaches the whole process group, the driver included) is
    // probably going down with its owner: give the owner's own signal handler a moment first.
    if (exit.code === 0 || exit.signal === 'SIGINT' || exit.signal === 'SIGTERM') {
      await new Promise((r) => setTimeout(r, GRACEFUL_PAUSE_MS));
      if (this.#stopped || this.#released) return;
    }
    this.#deaths = [...this.#deaths.filter((t) => diedAt - t < CRASH_WINDOW_MS), diedAt];
    const what = `the embedded nats-server (pid ${dead.pid}, port ${dead.port})`;
    if (this.#deaths.length > MAX_DEATHS) {
      return this.#giveUp(`${what} ${exit.why}, its ${this.#deaths.length}th death in ${CRASH_WINDOW_MS / 1000} s`);
    }
    log(`${what} ${exit.why}; restarting it on the same port and store`);
    let lastError = '';
    for (let attempt = 1; ; attempt++) {
      if (this.#stopped) return;
      // A store that is gone cannot come back: a new, empty one would silently lose the log.
      const store = this.#opts.storeDir;
      if (!existsSync(store) || (this.#hadJetStream && !existsSync(join(store, 'jetstream')))) {
        return this.#giveUp(`${what} ${exit.why} and cannot come back: its store ${store} is gone`);
      }
      const left = RESTART_BUDGET_MS - (Date.now() - diedAt);
      if (left <= 0) {
        return this.#giveUp(`${what} ${exit.why} and could not be restarted within ${RESTART_BUDGET_MS} ms (${attempt - 1} attempt(s)): ${lastError}`);
      }
      try {
        const server = await NatsServer.start({ ...this.#opts, readyTimeoutMs: left });
        if (this.#stopped) {
          await server.stop();
          return;
        }
        this.#server = server;
        this.#watch(server);
        const ms = Date.now() - diedAt;
        log(`the embedded nats-server is back on port ${server.port} (pid ${server.pid}) after ${ms} ms`);
        this.handlers.restarted?.(server, ms);
        return;
      } catch (e) {
        lastError = summarize((e as Error).message, dead.port);
        await new Promise((r) => setTimeout(r, RESTART_PAUSE_MS));
      }
    }
  }

  #giveUp(why: string): void {
    const err = new NatsUnreachableError(this.#server.url, new Error(why), 'Nothing sent since it died was delivered; start the cluster again.');
    this.#gaveUp = err;
    log(`${why}; giving up: pending calls, refs and maps fail with NatsUnreachableError`);
    this.handlers.gaveUp?.(err);
  }
}

/** The gist of a start failure: a taken port, else the first line and the server's own complaint. */
function summarize(message: string, port: number): string {
  if (/address already in use/i.test(message)) return `its port ${port} is taken (address already in use)`;
  const lines = message.split('\n');
  const cause = lines.findLast((l) => /\[FTL\]|\[ERR\]/.test(l));
  return cause ? `${lines[0]} (${cause.replace(/^.*?\[(FTL|ERR)\]\s*/, '').trim()})` : lines[0]!;
}
