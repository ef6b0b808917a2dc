/**
 * Resolving `module#export` to a file under the worker's roots. The spool is shared, so a job file may
 * name anything: this module is the gate that keeps a worker from importing code outside the folders it
 * was told to trust. A reference is accepted only when the real path (symlinks resolved) of the module
 * file lies inside a root's real path; URLs, `node:` builtins, absolute paths outside the roots and `..`
 * escapes are refused with a reason.
 */
import { realpath, stat, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModuleRefError } from '../errors.js';
import { FN_REF } from './format.js';

export interface ResolvedRef { file: string; url: string; exportName: string }

export function splitRef(ref: string): { spec: string; exportName: string } {
  const m = FN_REF.exec(ref);
  if (!m) throw new ModuleRefError(ref, "must be 'module#export', e.g. './jobs.mjs#render'");
  return { spec: m[1]!, exportName: m[2]! };
}

function inside(file: string, root: string): boolean {
  return file === root || file.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Real paths of the roots, computed once per worker. */
export async function realRoots(roots: string[]): Promise<string[]> {
  return Promise.all(roots.map(async (r) => {
    try { return await realpath(resolve(r)); } catch { throw new ModuleRefError(r, `root folder ${r} does not exist`); }
  }));
}

export async function resolveRef(ref: string, roots: string[]): Promise<ResolvedRef> {
  const { spec, exportName } = splitRef(ref);
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(spec)) throw new ModuleRefError(ref, 'URLs and node: builtins are not job modules; name a file under the worker roots');
  const relative = spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..' || isAbsolute(spec) || /\.(m?js|cjs)$/.test(spec) && !spec.startsWith('@');
  const tried: string[] = [];
  for (const root of roots) {
    let candidate: string | undefined;
    if (relative) {
      candidate = isAbsolute(spec) ? spec : join(root, spec);
    } else {
      candidate = await resolvePackage(spec, root);
      if (!candidate) { tried.push(root); continue; }
    }
    let real: string;
    try {
      real = await realpath(candidate);
    } catch {
      tried.push(root);
      continue;
    }
    if (!roots.some((r) => inside(real, r))) {
      throw new ModuleRefError(ref, `resolves to ${real}, outside the worker roots (${roots.join(', ')}); refusing to import it`);
    }
    const st = await stat(real);
    if (!st.isFile()) throw new ModuleRefError(ref, `${real} is not a file`);
    return { file: real, url: pathToFileURL(real).href, exportName };
  }
  throw new ModuleRefError(ref, `module '${spec}' not found under the worker roots (${roots.join(', ')})`);
}

/** A bare specifier: a package installed under the root (its node_modules), ESM or CommonJS. */
async function resolvePackage(spec: string, root: string): Promise<string | undefined> {
  try {
    return createRequire(join(root, '__zcq_resolve__.js')).resolve(spec);
  } catch {
    // ESM-only packages have no "require" condition: read the package's exports by hand.
  }
  const m = /^((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(spec);
  if (!m) return undefined;
  const pkgDir = join(root, 'node_modules', m[1]!);
  let pkg: Record<string, unknown>;
  try { pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')); } catch { return undefined; }
  const sub = m[2] ? '.' + m[2] : '.';
  const target = pickExport(pkg.exports, sub) ?? (sub === '.' ? (pkg.module ?? pkg.main ?? 'index.js') : sub);
  return typeof target === 'string' ? join(pkgDir, target) : undefined;
}

function pickExport(exp: unknown, sub: string): string | undefined {
  if (exp === undefined || exp === null) return undefined;
  if (typeof exp === 'string') return sub === '.' ? exp : undefined;
  if (typeof exp !== 'object') return undefined;
  const o = exp as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length > 0 && keys.every((k) => !k.startsWith('.'))) return sub === '.' ? pickCondition(o) : undefined;
  const entry = o[sub];
  if (typeof entry === 'string') return entry;
  if (entry && typeof entry === 'object') return pickCondition(entry as Record<string, unknown>);
  return undefined;
}

function pickCondition(o: Record<string, unknown>): string | undefined {
  for (const c of ['import', 'node', 'default']) {
    const v = o[c];
    if (typeof v === 'string') return v;
    if (v && typeof v === 'object') { const r = pickCondition(v as Record<string, unknown>); if (r) return r; }
  }
  return undefined;
}

/** Resolves function references for one worker, remembering what it found. */
export interface RefResolver {
  /** Where `ref` points, from the cache or found now; throws ModuleRefError when it cannot be used. */
  resolve(ref: string): Promise<ResolvedRef>;
  /** Where `ref` points if it is remembered, without a look-up (a worker's hot path: no promise a job). */
  cached(ref: string): ResolvedRef | undefined;
  /** References remembered now. */
  readonly size: number;
  /** Forget every reference (after a deployment that moved modules, say). */
  clear(): void;
}

/** How many resolved references a worker remembers by default. */
export const REF_CACHE_MAX = 10_000;

/**
 * A resolver over `roots` (real paths, from realRoots) that remembers successful resolutions only, the
 * least recently used forgotten past `max`. Failures are not remembered: a module deployed after a job
 * failed to find it is found by the next job, and a reference refused because of a symlink is judged
 * again once the link is fixed. A failure costs a few realpath calls, no more than the first look-up did.
 */
export function createRefResolver(roots: string[], opts: { max?: number } = {}): RefResolver {
  const max = Math.max(1, opts.max ?? REF_CACHE_MAX);
  const cache = new Map<string, ResolvedRef>();
  const cached = (ref: string): ResolvedRef | undefined => {
    const hit = cache.get(ref);
    if (hit) {
      // Map keeps insertion order: re-inserting marks the entry as the most recently used.
      cache.delete(ref);
      cache.set(ref, hit);
    }
    return hit;
  };
  return {
    cached,
    async resolve(ref) {
      const hit = cached(ref);
      if (hit) return hit;
      const found = await resolveRef(ref, roots);
      cache.set(ref, found);
      if (cache.size > max) cache.delete(cache.keys().next().value!);
      return found;
    },
    get size() { return cache.size; },
    clear() { cache.clear(); },
  };
}
