/**
 * Who may read the dashboard. On 127.0.0.1 (the default), localhost or ::1 anyone on this
 * machine may, and the Host header must name a loopback address (a web page elsewhere cannot
 * reach it through DNS rebinding). On any other address every request needs the generated token
 * in the URL (`?token=...`): 401 without one, 403 with a wrong one.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** Whether `host` is an address that needs no token. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.replace(/^\[|\]$/g, ''));
}

export interface Access {
  /** Null on a loopback address. */
  readonly token: string | null;
  /** `null` when the request may go on, else the status and a message. */
  check(req: IncomingMessage, url: URL): { status: number; message: string } | null;
}

export function access(host: string): Access {
  if (isLoopback(host)) {
    return {
      token: null,
      check(req) {
        const h = (req.headers.host ?? '').replace(/:\d+$/, '');
        if (!isLoopback(h)) return { status: 403, message: `the dashboard on ${host} answers only requests for a loopback host, not '${h}'` };
        return null;
      },
    };
  }
  const token = randomBytes(18).toString('base64url');
  const expected = Buffer.from(token);
  return {
    token,
    check(_req, url) {
      const given = url.searchParams.get('token');
      if (!given) return { status: 401, message: 'this dashboard needs its token: open the URL it printed (…?token=...)' };
      const b = Buffer.from(given);
      if (b.length !== expected.length || !timingSafeEqual(b, expected)) return { status: 403, message: 'wrong dashboard token' };
      return null;
    },
  };
}
