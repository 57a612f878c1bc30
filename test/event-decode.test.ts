/**
 * The envelope decoder of the read path (runtime/log/event-decode.ts) against `codec.decode`: the
 * same value, key order included, for plain envelopes and for every kind of data it hands over.
 */
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { decode, encode } from '../runtime/transport/codec.ts';
import { decodeEnvelope } from '../runtime/log/event-decode.ts';

function same(value: unknown): void {
  const bytes = encode(value);
  const want = decode(bytes);
  const got = decodeEnvelope(bytes);
  expect(isDeepStrictEqual(got, want), JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))).toBe(true);
  expect(JSON.stringify(Object.keys(got as object))).toBe(JSON.stringify(Object.keys(want as object)));
}

const envelope = (data: unknown, extra: Record<string, unknown> = {}) =>
  ({ v: 1, kind: 'ref', id: '2-ab12cd-7', seq: 3, at: 1795435107098, type: 'ref.failed', from: 'running', to: 'failed', data, ...extra });

describe('decodeEnvelope gives what codec.decode gives', () => {
  it('plain envelopes: records, ASCII strings, every integer width, floats, null, booleans, arrays', () => {
    for (const n of [0, 1, 63, 64, 100, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 1.5, -0, 0.1, 1e300, NaN, Infinity]) {
      same(envelope({ n, list: [n, -n] }));
    }
    same(envelope({ owner: 2, creator: 1, task: null, ok: true, no: false, nested: { a: [{ x: 1 }, { x: 2 }, { y: 'z' }] } }));
    same(envelope({ error: { name: 'Error', message: 'x'.repeat(40), stack: 'y'.repeat(300) } }));
    same(envelope({ long: 'a'.repeat(70_000), many: Array.from({ length: 70 }, (_, i) => ({ [`k${i}`]: i })) }));
    same(envelope({ 'odd key': 1, '': 2, '1': 3, constructor: 4 }, { from: null }));
    same(envelope([]));
  });

  it('hands anything else to codec.decode: Maps, Sets, Dates, typed arrays, bigints, non-ASCII, undefined', () => {
    for (const data of [
      new Map<unknown, unknown>([[1, 'a'], ['b', { c: 2 }]]), new Set([1, 2]), new Date(1795435107098), new Float64Array([1, 2.5]), new Uint8Array([1, 2, 3]),
      2n ** 70n, -(2n ** 64n), 'héllo', '日本', '\ud800', undefined, { __proto__: null, a: 1 }, { ['__proto__']: 1 }, Buffer.from('abc'), [undefined, null],
      Math.fround(1.1), 2 ** 64,
    ]) {
      same(envelope({ value: data }));
    }
  });

  it('a run of envelopes with the same shape, then a different one, reuses no stale shape', () => {
    for (let i = 0; i < 50; i++) same(envelope({ owner: i, creator: i + 1, task: i % 2 ? null : `t#${i}` }));
    same({ v: 1, kind: 'worker', id: '2', data: { pid: 2 } });
    same(envelope({ owner: 1 }));
  });

  it('garbage is codec.decode’s error, not a wrong value', () => {
    for (const bytes of [Uint8Array.from([0xd4, 0x72, 0x40]), Uint8Array.from([0x41]), Uint8Array.from([0xcb, 1, 2]), Uint8Array.from([0xa5, 0x61])]) {
      let want: unknown;
      try {
        want = decode(bytes);
      } catch (e) {
        want = e;
      }
      if (want instanceof Error) expect(() => decodeEnvelope(bytes)).toThrow(want.message);
      else expect(decodeEnvelope(bytes)).toEqual(want);
    }
  });
});
