/**
 * RemoteRef: a handle to a value owned by one process (Julia's RemoteRef / Future).
 * The handle is small and travels in messages as its id; the value stays on its owner until
 * someone fetches it.
 */
import { registerRefClass } from '../transport/codec.ts';
import { InvalidArgumentError } from '../transport/errors.ts';

/** What a handle needs from the process it lives in. */
export interface RefClient {
  readonly pid: number;
  refFetch(ref: RemoteRef): Promise<unknown>;
  refWait(ref: RemoteRef): Promise<void>;
  refIsReady(ref: RemoteRef): Promise<boolean>;
  refPut(ref: RemoteRef, value: unknown): Promise<void>;
  refFree(ref: RemoteRef): Promise<void>;
}

/** Parses the owner pid out of a ref id (`<owner>-<nonce>-<n>`, or `-e<n>` for remoteRef(pid)). */
export function ownerOf(id: string): number {
  const pid = Number.parseInt(id, 10);
  if (!Number.isInteger(pid) || pid < 1 || !/^\d+-[A-Za-z0-9]+-e?\d+$/.test(id)) {
    throw new InvalidArgumentError('id', `'${id}' is not a RemoteRef id (expected <owner>-<nonce>-<n>)`);
  }
  return pid;
}

/** Whether the id was made by `remoteRef(pid)`: an empty ref waiting for `put`. */
export function isEmptyRefId(id: string): boolean {
  return /-e\d+$/.test(id);
}

export class RemoteRef<T = unknown> {
  /** Stable id, usable from any process with `cluster.ref(id)`. */
  readonly id: string;
  /** The pid that owns the value. */
  readonly where: number;
  /** @internal */
  client: RefClient | null;
  /** @internal the call that computes the value, when this process made it */
  launch: Promise<void> | null = null;
  /** @internal the fetched value, cached like Julia's Future */
  cached: { value: T } | null = null;

  constructor(id: string, client: RefClient | null) {
    this.id = id;
    this.where = ownerOf(id);
    this.client = client;
  }

  private bound(): RefClient {
    if (!this.client) throw new InvalidArgumentError('ref', `RemoteRef ${this.id} is not bound to a cluster; use cluster.ref('${this.id}')`);
    return this.client;
  }

  /** The value; waits until it is ready. A no-op move on the owner. Cached after the first fetch. */
  async fetch(): Promise<T> {
    if (this.cached) return this.cached.value;
    return (await this.bound().refFetch(this)) as T;
  }

  /** Resolves when the value is ready; rejects if its computation failed. */
  wait(): Promise<void> {
    return this.bound().refWait(this);
  }

  /** Whether the value is ready, without waiting. */
  isReady(): Promise<boolean> {
    if (this.cached) return Promise.resolve(true);
    return this.bound().refIsReady(this);
  }

  /** Stores a value in an empty ref (one made by `cluster.remoteRef(pid)`). */
  put(value: T): Promise<void> {
    return this.bound().refPut(this, value);
  }

  /** Releases the value on its owner. */
  free(): Promise<void> {
    this.cached = null;
    return this.bound().refFree(this);
  }

  toString(): string {
    return `RemoteRef(${this.id})`;
  }

  toJSON(): { id: string; where: number } {
    return { id: this.id, where: this.where };
  }
}

registerRefClass(RemoteRef, (id) => new RemoteRef(id, null));
