/**
 * Tasks of the Life example (the manual's "Distributed Array Operations"), loaded on every worker
 * with `cluster.everywhere()`. Boards are Uint8Array, 1 = alive, row-major [rows, cols].
 */
import { localindexes, localpart, task } from 'colony';
import type { DArray, Range, Ranges } from 'colony';

/** Whether this machine stores the low byte of a word first (the fast rule below needs it). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Julia's `life_rule`: `old` is an (m + 2) x (n + 2) block, the cells plus a ring of neighbours;
 * returns the next state of the m x n cells inside the ring.
 */
export function lifeRule(old: Uint8Array, m: number, n: number): Uint8Array {
  const w = n + 2;
  const out = new Uint8Array(m * n);
  // Column sums of three rows, then a sliding window of three columns: 3 loads per cell, not 8.
  const col = new Uint16Array(w);
  for (let i = 1; i <= m; i++) {
    const up = (i - 1) * w;
    const cur = i * w;
    const dn = (i + 1) * w;
    for (let j = 0; j < w; j++) col[j] = old[up + j]! + old[cur + j]! + old[dn + j]!;
    const o = (i - 1) * n - 1;
    let left = col[0]!;
    let mid = col[1]!;
    for (let j = 1; j <= n; j++) {
      const right = col[j + 1]!;
      const self = old[cur + j]!;
      const nc = left + mid + right - self;
      out[o + j] = nc === 3 || (nc === 2 && self === 1) ? 1 : 0;
      left = mid;
      mid = right;
    }
  }
  return out;
}

/** Row stride of {@link paddedBlock}: the cells plus the ring, rounded up to whole 32-bit words. */
export const paddedWidth = (n: number) => (n + 2 + 3) & ~3;

let scratch = new Uint8Array(0);
let scratchShape = '';

/**
 * An (m + 2) x paddedWidth(n) scratch block for {@link lifeRulePadded}, reused between calls in
 * this process. Its padding bytes (past the ring) are zero; the caller writes every other byte.
 */
export function paddedBlock(m: number, n: number): Uint8Array {
  const size = (m + 2) * paddedWidth(n);
  if (scratch.length < size) scratch = new Uint8Array(size);
  const b = scratch.subarray(0, size);
  // The same shape as last time leaves the padding as it was: zero.
  if (scratchShape !== `${m}x${n}`) b.fill(0);
  scratchShape = `${m}x${n}`;
  return b;
}

/**
 * `lifeRule` on a block whose rows are `paddedWidth(n)` bytes apart, four cells at a time: each
 * 32-bit word holds four cells (one byte each, 0 or 1), and the neighbour counts of all four are
 * summed in one word (a count never exceeds 8, so bytes never carry into each other).
 */
export function lifeRulePadded(old: Uint8Array, m: number, n: number, out: Uint8Array = new Uint8Array(m * n)): Uint8Array {
  const W = paddedWidth(n);
  if (!LITTLE_ENDIAN) {
    const plain = new Uint8Array((m + 2) * (n + 2));
    for (let i = 0; i < m + 2; i++) plain.set(old.subarray(i * W, i * W + n + 2), i * (n + 2));
    return lifeRule(plain, m, n);
  }
  const Q = W >> 2;
  // Int32 rather than Uint32 views: every word is below 2^31, and int32 arithmetic stays in integer registers.
  const words = new Int32Array(old.buffer, old.byteOffset, (m + 2) * Q);
  const row = new Int32Array(Q);
  const rowBytes = new Uint8Array(row.buffer);
  for (let i = 1; i <= m; i++) {
    const up = (i - 1) * Q;
    const cur = i * Q;
    const dn = (i + 1) * Q;
    let vPrev = 0;
    let v = (words[up]! + words[cur]! + words[dn]!) | 0;
    // The last word has no right neighbour word: the loop runs to Q - 1 and reads one past it
    // only while q + 1 < Q.
    const last = Q - 1;
    for (let q = 0; q <= last; q++) {
      const vNext = q < last ? (words[up + q + 1]! + words[cur + q + 1]! + words[dn + q + 1]!) | 0 : 0;
      const c = words[cur + q]!;
      // Column sums of the left and right neighbour of every byte, then the 3x3 sum minus the cell.
      const left = (v << 8) | (vPrev >>> 24);
      const right = (v >>> 8) | (vNext << 24);
      const nc = (left + v + right - c) | 0;
      // Alive next iff (count | self) == 3: count 3, or count 2 on a live cell. x is 0 exactly
      // there; x <= 15, so x + 15 reaches bit 4 iff x != 0, without carrying into the next byte.
      const x = (nc | c) ^ 0x03030303;
      row[q] = (((x + 0x0f0f0f0f) >>> 4) & 0x01010101) ^ 0x01010101;
      vPrev = v;
      v = vNext;
    }
    out.set(rowBytes.subarray(1, n + 1), (i - 1) * n);
  }
  return out;
}

/** One generation of Life on a torus, in one process: the reference the distributed run must match. */
export function serialLifeStep(board: Uint8Array, rows: number, cols: number): Uint8Array {
  const w = cols + 2;
  const old = new Uint8Array((rows + 2) * w);
  for (let i = -1; i <= rows; i++) {
    const src = ((i + rows) % rows) * cols;
    const dst = (i + 1) * w;
    old[dst] = board[src + cols - 1]!;
    old.set(board.subarray(src, src + cols), dst + 1);
    old[dst + w - 1] = board[src]!;
  }
  return lifeRule(old, rows, cols);
}

const same = (a: Ranges, b: Ranges) => a.every(([s, e], i) => s === b[i]![0] && e === b[i]![1]);

/**
 * The rule on words [q0, q1) of one row of a chunk whose rows are `Q` whole words (four cells a
 * word, as in {@link lifeRulePadded}, but without a ring in the row): `up`, `cur` and `dn` hold
 * the rows above, at and below, from word offsets `u`, `c` and `d`. `left` and `right` are the
 * sums of the three ring cells left of the first cell and right of the last one.
 */
export function ruleWords(
  up: Int32Array, u: number, cur: Int32Array, c: number, dn: Int32Array, d: number,
  out: Int32Array, o: number, q0: number, q1: number, Q: number, left: number, right: number,
): void {
  let vPrev = q0 === 0 ? left << 24 : (up[u + q0 - 1]! + cur[c + q0 - 1]! + dn[d + q0 - 1]!) | 0;
  let v = (up[u + q0]! + cur[c + q0]! + dn[d + q0]!) | 0;
  // Every word but the row's last has a right neighbour word in the row.
  const end = q1 < Q ? q1 : Q - 1;
  let q = q0;
  for (; q < end; q++) {
    const vNext = (up[u + q + 1]! + cur[c + q + 1]! + dn[d + q + 1]!) | 0;
    out[o + q] = rule4(vPrev, v, vNext, cur[c + q]!);
    vPrev = v;
    v = vNext;
  }
  if (q < q1) out[o + q] = rule4(vPrev, v, right, cur[c + q]!);
}

/**
 * The next state of the four cells of word `w`, from the column sums (above + self + below) of
 * the word before, the word itself and the word after. A count never exceeds 9, so bytes never
 * carry into each other.
 */
function rule4(vPrev: number, v: number, vNext: number, w: number): number {
  const nc = (((v << 8) | (vPrev >>> 24)) + v + ((v >>> 8) | (vNext << 24)) - w) | 0;
  // Alive next iff (count | self) == 3: count 3, or count 2 on a live cell. x is 0 exactly
  // there; x <= 15, so x + 15 reaches bit 4 iff x != 0, without carrying into the next byte.
  const x = (nc | w) ^ 0x03030303;
  return (((x + 0x0f0f0f0f) >>> 4) & 0x01010101) ^ 0x01010101;
}

/** Cells of the interior computed between two turns of the event loop (about half a millisecond). */
const SLICE_CELLS = 1 << 18;

const turn = () => new Promise<void>((r) => setImmediate(r));

/** `a` as 32-bit words (a copy only if it does not start on a word). */
const wordsOf = (a: Uint8Array) => (a.byteOffset % 4 ? new Int32Array(a.slice().buffer) : new Int32Array(a.buffer, a.byteOffset, a.length >> 2));

/** The ring column on one side: the corner above, one cell per row, the corner below. */
function ringColumn(above: Uint8Array, side: Uint8Array, below: Uint8Array, m: number): Uint8Array {
  const col = new Uint8Array(m + 2);
  col[0] = above[0]!;
  col.set(side, 1);
  col[m + 1] = below[0]!;
  return col;
}

/**
 * The init of `lifeStep`: the next state of block `I` of `d`, from the block plus its halo on the
 * torus. As in the manual, the neighbourhood is put together from nine pieces: the corners, the
 * four sides and the middle; the middle is this worker's own chunk, the eight others come in one
 * request per neighbouring chunk.
 *
 * When the chunk's rows are whole words, the interior (every cell whose neighbours all lie in the
 * chunk) is computed while the halo is on its way, in slices with turns of the event loop between
 * them, so this worker also answers its neighbours' halo requests without making them wait for
 * its whole computation; the cells along the border follow once the halo is here.
 */
export const lifeChunk = task(import.meta.url, async function lifeChunk(I: Ranges, d: DArray<Uint8Array>): Promise<Uint8Array> {
  const [rows, cols] = d.dims as [number, number];
  const [[r0, r1], [c0, c1]] = I as [Range, Range];
  const m = r1 - r0;
  const n = c1 - c0;
  if (m === 0 || n === 0) return new Uint8Array(0);
  const top = (r0 - 1 + rows) % rows;
  const bot = r1 % rows;
  const left = (c0 - 1 + cols) % cols;
  const right = c1 % cols;
  const rowR: Range[] = [[top, top + 1], [r0, r1], [bot, bot + 1]];
  const colR: Range[] = [[left, left + 1], [c0, c1], [right, right + 1]];
  const halo: Ranges[] = [];
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) if (a !== 1 || b !== 1) halo.push([rowR[a]!, colR[b]!]);
  const mine = same(localindexes(d), I);
  const haloRead = d.getMany(halo);
  const middle = mine ? localpart(d) : null;
  if (!middle || n % 4 !== 0 || middle.byteOffset % 4 !== 0 || !LITTLE_ENDIAN) {
    const [pieces, mid] = await Promise.all([haloRead, middle ?? d.get(I)]);
    // Let this worker answer the neighbours' halo requests that came in meanwhile before the long
    // computation: they would wait for it otherwise.
    await turn();
    return lifeFromPieces(pieces, mid, m, n);
  }
  const Q = n >> 2;
  const mid = new Int32Array(middle.buffer, middle.byteOffset, m * Q);
  const out = new Uint8Array(m * n);
  const o32 = new Int32Array(out.buffer, 0, m * Q);
  if (Q >= 3) {
    const slice = Math.max(1, Math.floor(SLICE_CELLS / n));
    for (let i0 = 1; i0 < m - 1; i0 += slice) {
      await turn();
      const i1 = Math.min(m - 1, i0 + slice);
      for (let i = i0; i < i1; i++) ruleWords(mid, (i - 1) * Q, mid, i * Q, mid, (i + 1) * Q, o32, i * Q, 1, Q - 1, Q, 0, 0);
    }
  }
  const [tl, t, tr, l, r, bl, b, br] = (await haloRead) as Uint8Array[];
  const up = wordsOf(t!);
  const dn = wordsOf(b!);
  const L = ringColumn(tl!, l!, bl!, m);
  const R = ringColumn(tr!, r!, br!, m);
  for (let i = 0; i < m; i++) {
    const ls = L[i]! + L[i + 1]! + L[i + 2]!;
    const rs = R[i]! + R[i + 1]! + R[i + 2]!;
    const [ua, uo] = i === 0 ? [up, 0] : [mid, (i - 1) * Q];
    const [da, dof] = i === m - 1 ? [dn, 0] : [mid, (i + 1) * Q];
    if (i === 0 || i === m - 1 || Q < 3) {
      ruleWords(ua, uo, mid, i * Q, da, dof, o32, i * Q, 0, Q, Q, ls, rs);
    } else {
      ruleWords(ua, uo, mid, i * Q, da, dof, o32, i * Q, 0, 1, Q, ls, rs);
      ruleWords(ua, uo, mid, i * Q, da, dof, o32, i * Q, Q - 1, Q, Q, ls, rs);
    }
  }
  return out;
});

/** The rule on a chunk whose pieces are all here: builds the padded block and applies {@link lifeRulePadded}. */
function lifeFromPieces(pieces: Uint8Array[], middle: Uint8Array, m: number, n: number): Uint8Array {
  const w = paddedWidth(n);
  const old = paddedBlock(m, n);
  const [tl, t, tr, l, r, bl, b, br] = pieces;
  old[0] = tl![0]!;
  old.set(t!, 1);
  old[n + 1] = tr![0]!;
  for (let i = 0; i < m; i++) {
    const row = (i + 1) * w;
    old[row] = l![i]!;
    old.set(middle.subarray(i * n, (i + 1) * n), row + 1);
    old[row + n + 1] = r![i]!;
  }
  const last = (m + 1) * w;
  old[last] = bl![0]!;
  old.set(b!, last + 1);
  old[last + n + 1] = br![0]!;
  return lifeRulePadded(old, m, n);
}

/** A random board chunk: each cell alive with probability `density`, from a seeded generator so runs repeat. */
export const randomCells = task(import.meta.url, function randomCells(I: Ranges, cols: number, density: number, seed: number): Uint8Array {
  const [[r0, r1], [c0, c1]] = I as [Range, Range];
  const out = new Uint8Array((r1 - r0) * (c1 - c0));
  let k = 0;
  for (let i = r0; i < r1; i++) for (let j = c0; j < c1; j++) out[k++] = cellAt(i * cols + j, seed) < density ? 1 : 0;
  return out;
});

/** A uniform number in [0, 1) for cell `index`, the same wherever it is computed. */
export function cellAt(index: number, seed: number): number {
  let x = (index ^ seed) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x / 4294967296;
}

