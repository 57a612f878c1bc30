/**
 * The glue between a manager instance and its persisted `adapter` actor, plus the announce
 * subject its jobs report to when they start.
 *
 * A manager gets no handle on the driver's journal (LaunchParams carries the NATS URL and the
 * credentials only), so the session opens a connection of its own to the cluster's NATS. Events
 * land under `colony.<c>.evt.adapter.<id>`; the actor is restored from the log when the session
 * reopens, so one manager instance keeps one history across many launches.
 *
 * The announce subject, `colony.<c>.adapter.<id>`, answers a job's first message ("I run, token
 * T") only after the manager has called `launched()`: the driver therefore always expects a
 * worker before it registers, and the start timeout counts from the moment the job runs.
 */
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { AdapterEvent } from '../actors/index.ts';
import { ActorHost } from '../runtime/log/actor-host.ts';
import type { HostedActor } from '../runtime/log/actor-host.ts';
import { Journal } from '../runtime/log/journal.ts';
import type { LaunchParams } from './cluster-manager.ts';

/** What a starting job says on the announce subject. */
export interface Announcement {
  token: string;
  host: string;
  ospid: number;
}

/** The answer: start the worker, or not (the launch was cancelled or is unknown). */
export interface AnnounceReply {
  go: boolean;
  reason?: string;
}

/** The announce subject of adapter `id` in cluster `cluster`. */
export function announceSubject(cluster: string, id: string): string {
  return `colony.${cluster}.adapter.${id}`;
}

/** An adapter id is one subject token. */
export const ADAPTER_ID = /^[A-Za-z0-9_-]+$/;

/** A fresh adapter id: `sge-1a2b3c4d`. */
export function newAdapterId(name: string): string {
  return `${name}-${randomBytes(4).toString('hex')}`;
}

/** How long the session keeps reconnecting to a vanished server before it gives up. */
const RECONNECT_ATTEMPTS = 20;
const RECONNECT_WAIT_MS = 250;

export class AdapterSession {
  private closing: Promise<void> | null = null;
  /** False while the client is reconnecting. */
  connected = true;
  /** Events the machine refused (a bug, or a unit that changed under us); kept for debugging. */
  readonly refused: AdapterEvent[] = [];

  private constructor(
    readonly nc: NatsConnection,
    readonly journal: Journal,
    readonly actor: HostedActor,
    readonly cluster: string,
    readonly url: string,
    readonly subject: string,
  ) {}

  /**
   * Connects to the cluster of `params`, restores (or starts) actor `adapter.<id>` and serves the
   * announce subject with `onAnnounce`. `onDisconnect` runs when the server goes away (it may
   * close the session); `onLost` runs once if the connection is lost for good.
   */
  static async open(
    params: LaunchParams,
    id: string,
    onAnnounce: (a: Announcement) => AnnounceReply | Promise<AnnounceReply>,
    onLost: () => void,
    onDisconnect: () => void = () => undefined,
  ): Promise<AdapterSession> {
    const nc = await connect({
      servers: params.nats.split(',').map((s) => s.trim()),
      user: params.env.COLONY_NATS_USER,
      pass: params.env.COLONY_NATS_PASSWORD,
      name: `colony-adapter-${id}`,
      timeout: 5000,
      maxReconnectAttempts: RECONNECT_ATTEMPTS,
      reconnectTimeWait: RECONNECT_WAIT_MS,
    });
    try {
      const journal = await Journal.attach(nc, params.cluster);
      const host = new ActorHost(journal, `a${randomBytes(4).toString('hex')}`, { snapshotEvery: { adapter: 1 } });
      const actor = await host.restore('adapter', id, { verify: false });
      const subject = announceSubject(params.cluster, id);
      const session = new AdapterSession(nc, journal, actor, params.cluster, params.nats, subject);
      nc.subscribe(subject, {
        callback: (_err, msg) => {
          void (async () => {
            let reply: AnnounceReply;
            try {
              const a = JSON.parse(new TextDecoder().decode(msg.data)) as Announcement;
              reply = await onAnnounce(a);
            } catch (e) {
              reply = { go: false, reason: (e as Error).message };
            }
            if (msg.reply) msg.respond(JSON.stringify(reply));
          })();
        },
      });
      await nc.flush();
      void nc.closed().then(() => {
        if (!session.closing) onLost();
      });
      void (async () => {
        for await (const st of nc.status()) {
          if (st.type === 'disconnect') {
            session.connected = false;
            onDisconnect();
          } else if (st.type === 'reconnect') {
            session.connected = true;
          }
        }
      })().catch(() => undefined);
      return session;
    } catch (e) {
      await nc.close().catch(() => undefined);
      throw e;
    }
  }

  /** The actor's state: `idle`, `submitting`, `queued`, `running`, `exited`, `failed`. */
  get state(): string {
    return this.actor.state;
  }

  /** Records one transition (pipelined); an event the machine does not accept is kept in `refused`. */
  record(event: AdapterEvent): boolean {
    if (this.closing || this.nc.isClosed()) return false;
    if (!this.actor.accepts(event)) {
      this.refused.push(event);
      return false;
    }
    this.actor.send(event);
    return true;
  }

  /** Waits until every recorded event is stored. */
  async durable(): Promise<void> {
    await this.actor.durable();
  }

  /** Stores what is pending, then closes the connection. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.nc.isClosed()) return;
      if (this.connected) {
        await this.actor.durable().catch(() => undefined);
        await this.nc.drain().catch(() => undefined);
      } else {
        // Reconnecting to a server that is gone: what is pending cannot be stored any more.
        await this.nc.close().catch(() => undefined);
      }
    })();
    return this.closing;
  }
}
