/**
 * A call is resent while it waits (its request or its reply may be lost with a NATS server that
 * dies): the worker runs it once and answers every repeat with the first reply.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInbox } from '@nats-io/transport-node';
import type { Msg } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { decode } from '../runtime/transport/codec.ts';
import { countRun } from './fixtures/tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';

describe('calls sent more than once', () => {
  it('a repeated call request (same reply subject) runs once; every repeat gets the first reply', async () => {
    await using tc = await startCluster({ workers: 1, tasks: true });
    const { cluster } = tc;
    const file = join(tc.stateDir, 'runs');
    const inbox = createInbox();
    const replies: Msg[] = [];
    const sub = cluster.nc.subscribe(inbox, { callback: (_e, m) => { replies.push(m); } });
    const body = cluster.node.pack({ op: 'call', task: countRun.key, args: [file], from: 1 });
    const subject = cluster.journal.subjects.call(2);
    // Two tries at once (the first still running when the second comes), then one after it ended.
    cluster.nc.publish(subject, body, { reply: inbox });
    cluster.nc.publish(subject, body, { reply: inbox });
    await waitFor(() => replies.length === 1, { message: 'the first reply' });
    cluster.nc.publish(subject, body, { reply: inbox });
    await waitFor(() => replies.length === 2, { message: 'the repeat answered from memory' });
    // A new call (another reply subject) runs again.
    const fresh = await cluster.nc.request(subject, body, { timeout: 10_000 });
    sub.unsubscribe();
    expect(replies.map((m) => decode<{ ok: number }>(m.data).ok)).toEqual([1, 1]);
    expect(decode<{ ok: number }>(fresh.data).ok).toBe(2);
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toEqual(['2', '2']);
    // The normal path is untouched.
    expect(await cluster.remotecallFetch(countRun, 2, file)).toBe(3);
  });
});
