// A small seeded PRNG (mulberry32): the model test's operation sequence is a function of its seed.
export class Prng {
  private s: number;
  constructor(readonly seed: number) { this.s = seed >>> 0; }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]!; }
  /** A key of `weights`, drawn in proportion to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const keys = Object.keys(weights) as K[];
    let total = 0;
    for (const k of keys) total += weights[k];
    let r = this.next() * total;
    for (const k of keys) { r -= weights[k]; if (r < 0) return k; }
    return keys[keys.length - 1]!;
  }
}

/** The seed: ZCQ_MODEL_SEED when set, else a random one (printed with every failure and in the summary). */
export function modelSeed(env: NodeJS.ProcessEnv = process.env): number {
  const s = env.ZCQ_MODEL_SEED;
  if (s !== undefined && s !== '') {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`ZCQ_MODEL_SEED '${s}': an integer from 0 to 4294967295`);
    return n;
  }
  return Math.floor(Math.random() * 0x100000000) >>> 0;
}
