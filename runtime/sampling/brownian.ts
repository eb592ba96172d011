/**
 * The Brownian-tree noise ComfyUI's SDE samplers draw (BrownianTreeNoiseSampler over torchsde 0.2.6's
 * BrownianInterval with halfway_tree, no Levy area), reproduced from the seed:
 *  - numpy's SeedSequence (pool of 24 uint32 words) gives the root draw's seed and each node's seed
 *    from its spawn key (k, depth);
 *  - times live on a 1e-6 grid (Python round(t, 6)); every node splits at its rounded midpoint with a
 *    float32 Brownian bridge whose fresh randn comes from torch's CPU generator on the node seed;
 *  - W(ta, tb) is the float32 sum, left to right, of the maximal tree nodes covering [ta, tb].
 * Node values are cached, so a run builds each node once; the result never depends on query order.
 */
import { f32 } from './f32.js';
import { TorchGenerator, normalizeSeed, type Seed } from './torch-rng.js';
import type { NoiseSampler } from './types.js';

const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;

/** An integer as little-endian uint32 words (0 -> [0]), numpy's _coerce_to_uint32_array. */
export function uint32Words(value: bigint): number[] {
  if (value < 0n) throw new RangeError(`SeedSequence entropy must be non-negative, got ${value}`);
  if (value === 0n) return [0];
  const words: number[] = [];
  let v = value;
  while (v > 0n) {
    words.push(Number(v & 0xffffffffn));
    v >>= 32n;
  }
  return words;
}

/** numpy.random.SeedSequence(entropy, spawn_key, pool_size): its mixed pool and generate_state. */
export class SeedSequence {
  readonly pool: Uint32Array;

  constructor(entropy: bigint, spawnKey: readonly bigint[] = [], poolSize = 4) {
    let run = uint32Words(entropy);
    const spawn = spawnKey.flatMap((k) => uint32Words(k));
    if (spawn.length > 0 && run.length < poolSize) run = [...run, ...new Array<number>(poolSize - run.length).fill(0)];
    const entropyWords = [...run, ...spawn];
    this.pool = new Uint32Array(poolSize);
    let hashConst = INIT_A;
    const hashmix = (value: number): number => {
      let v = (value ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_A) >>> 0;
      v = Math.imul(v, hashConst) >>> 0;
      return (v ^ (v >>> XSHIFT)) >>> 0;
    };
    const mix = (x: number, y: number): number => {
      const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
      return (r ^ (r >>> XSHIFT)) >>> 0;
    };
    const pool = this.pool;
    for (let i = 0; i < poolSize; i++) pool[i] = hashmix(i < entropyWords.length ? entropyWords[i]! : 0);
    for (let src = 0; src < poolSize; src++) {
      for (let dst = 0; dst < poolSize; dst++) if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
    for (let src = poolSize; src < entropyWords.length; src++) {
      for (let dst = 0; dst < poolSize; dst++) pool[dst] = mix(pool[dst]!, hashmix(entropyWords[src]!));
    }
  }

  generateState(nWords: number): Uint32Array {
    const out = new Uint32Array(nWords);
    let hashConst = INIT_B;
    for (let i = 0; i < nWords; i++) {
      let v = (this.pool[i % this.pool.length]! ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_B) >>> 0;
      v = Math.imul(v, hashConst) >>> 0;
      out[i] = (v ^ (v >>> XSHIFT)) >>> 0;
    }
    return out;
  }
}

/** Python's round(t, 6): the exact binary value rounded to 6 decimals, exact ties to even. */
export function round6(t: number): number {
  const r = Number(t.toFixed(6));
  const exact = Math.abs(t).toFixed(40);
  const frac = exact.slice(exact.indexOf('.') + 1);
  if (frac[6] === '5' && /^0*$/.test(frac.slice(7))) {
    // An exact tie: toFixed rounded away from zero; Python keeps the even last digit.
    const lastDigit = Number(r.toFixed(6).slice(-1));
    if (lastDigit % 2 === 1) return Number((r - Math.sign(t) * 1e-6).toFixed(6));
  }
  return r;
}

const POOL_SIZE = 24;

interface TreeNode {
  s: number;
  e: number;
  /** Spawn key and depth; children are (2k, d + 1) and (2k + 1, d + 1). */
  k: bigint;
  d: number;
  w: Float32Array;
  mid?: number;
  left?: TreeNode;
  right?: TreeNode;
}

/** torchsde.BrownianTree(t0, zeros(size), t1, entropy) with ComfyUI's defaults (tol 1e-6, pool 24). */
export class BrownianTree {
  private readonly root: TreeNode;
  private readonly entropy: bigint;
  readonly t0: number;
  readonly t1: number;

  constructor(t0: number, t1: number, readonly numel: number, entropy: Seed) {
    if (!(t0 < t1)) throw new RangeError(`BrownianTree needs t0 < t1, got [${t0}, ${t1}]`);
    this.entropy = normalizeSeed(entropy);
    const [ws] = new SeedSequence(this.entropy, [], POOL_SIZE).generateState(3);
    const w = new TorchGenerator(ws!).randn(numel);
    const scale = f32(Math.sqrt(t1 - t0));
    for (let i = 0; i < numel; i++) w[i] = f32(w[i]! * scale);
    this.t0 = round6(t0);
    this.t1 = round6(t1);
    this.root = { s: this.t0, e: this.t1, k: 0n, d: 0, w };
  }

  /** Splits a node at its rounded midpoint with the Brownian bridge (float32, like torch). */
  private split(node: TreeNode): void {
    if (node.left) return;
    const { s, e } = node;
    const m = round6(0.5 * (e + s));
    const seed = new SeedSequence(this.entropy, [node.k, BigInt(node.d)], POOL_SIZE).generateState(4)[0]!;
    const noise = new TorchGenerator(seed).randn(this.numel);
    const h = 1 / (e - s);
    const a = f32(m - s);
    const hf = f32(h);
    const std = f32(Math.sqrt((m - s) * (e - m) * h));
    const left = new Float32Array(this.numel);
    const right = new Float32Array(this.numel);
    for (let i = 0; i < this.numel; i++) {
      const mean = f32(f32(node.w[i]! * a) * hf);
      left[i] = f32(mean + f32(std * noise[i]!));
      right[i] = f32(node.w[i]! - left[i]!);
    }
    node.mid = m;
    node.left = { s, e: m, k: 2n * node.k, d: node.d + 1, w: left };
    node.right = { s: m, e, k: 2n * node.k + 1n, d: node.d + 1, w: right };
  }

  /** Appends the maximal nodes covering [ta, tb] under `node`, left to right. */
  private cover(node: TreeNode, ta: number, tb: number, out: TreeNode[]): void {
    if (ta === node.s && tb === node.e) {
      out.push(node);
      return;
    }
    this.split(node);
    const m = node.mid!;
    if (m <= node.s || m >= node.e) throw new Error(`BrownianTree: cannot split [${node.s}, ${node.e}] further for query [${ta}, ${tb}]`);
    if (tb <= m) this.cover(node.left!, ta, tb, out);
    else if (ta >= m) this.cover(node.right!, ta, tb, out);
    else {
      this.cover(node.left!, ta, m, out);
      this.cover(node.right!, m, tb, out);
    }
  }

  /** The increment W(tb) - W(ta) for ta < tb (float32). */
  increment(ta: number, tb: number): Float32Array {
    const clamp = (t: number) => Math.min(Math.max(t, this.t0), this.t1);
    const a = round6(clamp(ta));
    const b = round6(clamp(tb));
    const nodes: TreeNode[] = [];
    this.cover(this.root, a, b, nodes);
    const out = Float32Array.from(nodes[0]!.w);
    for (let j = 1; j < nodes.length; j++) {
      const w = nodes[j]!.w;
      for (let i = 0; i < out.length; i++) out[i] = f32(out[i]! + w[i]!);
    }
    return out;
  }
}

/**
 * ComfyUI's BrownianTreeNoiseSampler for a schedule: one tree over [min non-zero sigma, max sigma] for
 * the whole latent, noise(sigma, sigmaNext) = sign * W(lo, hi) / sqrt(|sigmaNext - sigma|).
 */
export function brownianTreeNoiseSampler(sigmas: ArrayLike<number>, numel: number, seed: Seed): NoiseSampler {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < sigmas.length; i++) {
    const s = sigmas[i]!;
    if (s > 0 && s < lo) lo = s;
    if (s > hi) hi = s;
  }
  // Built on first use: a schedule with a single non-zero sigma never queries it.
  let tree: BrownianTree | null = null;
  return (sigma, sigmaNext) => {
    tree ??= new BrownianTree(lo, hi, numel, seed);
    const a = f32(sigma);
    const b = f32(sigmaNext);
    const w = a < b ? tree.increment(a, b) : tree.increment(b, a);
    const sign = a < b ? 1 : -1;
    const denom = f32(Math.sqrt(f32(Math.abs(f32(b - a)))));
    const out = new Float32Array(numel);
    for (let i = 0; i < numel; i++) out[i] = f32(f32(w[i]! * sign) / denom);
    return out;
  };
}
