/**
 * The spool's folders and how to make or recognise one. A folder is a spool when it holds the marker file
 * `zcq-spool.json`; every state is a folder beside it (see man/zcq-spool.5). Opening a spool creates
 * missing state folders (a person may have removed an empty one) but never turns an arbitrary non-empty
 * folder into a spool without `create`.
 */
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NotASpoolError } from '../errors.js';
import { writeFileDurable, fsyncDir } from './fsops.js';

export const SPOOL_FORMAT = 1;
export const MARKER = 'zcq-spool.json';

/** Every folder of the layout, relative to the spool root. */
export const STATE_DIRS = ['pending', 'deferred', 'claimed', 'done', 'failed'] as const;
export const AUX_DIRS = ['tmp', 'quarantine', 'workers', 'cancel', 'progress', 'cron', 'config'] as const;
export type JobState = (typeof STATE_DIRS)[number];

export interface Layout {
  root: string;
  tmp: string; pending: string; deferred: string; claimed: string; done: string; failed: string;
  quarantine: string; workers: string; cancel: string; progress: string; cron: string; config: string;
}

export function layoutOf(dir: string): Layout {
  const root = resolve(dir);
  const p = (n: string) => join(root, n);
  return {
    root, tmp: p('tmp'), pending: p('pending'), deferred: p('deferred'), claimed: p('claimed'), done: p('done'),
    failed: p('failed'), quarantine: p('quarantine'), workers: p('workers'), cancel: p('cancel'), progress: p('progress'), cron: p('cron'),
    config: p('config'),
  };
}

/** Where the CLI and API look when no folder is given: $ZCQ_SPOOL, else ./spool. */
export function defaultSpoolDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.ZCQ_SPOOL && env.ZCQ_SPOOL.length > 0 ? env.ZCQ_SPOOL : 'spool';
}

/**
 * Make sure `dir` is a spool. With `create`, a missing or empty folder becomes one; a non-empty folder
 * without the marker is refused (it is someone else's data).
 */
export async function ensureLayout(dir: string, create: boolean): Promise<Layout> {
  const l = layoutOf(dir);
  let markerOk = false;
  try {
    const m = JSON.parse(await readFile(join(l.root, MARKER), 'utf8'));
    if (typeof m !== 'object' || m === null || m.format !== SPOOL_FORMAT) {
      throw new NotASpoolError(l.root, `${MARKER} has format ${JSON.stringify(m?.format)}, this zcq reads format ${SPOOL_FORMAT}`);
    }
    markerOk = true;
  } catch (err) {
    if (err instanceof NotASpoolError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new NotASpoolError(l.root, 'it is a file');
    if (code !== 'ENOENT') {
      if (err instanceof SyntaxError) throw new NotASpoolError(l.root, `${MARKER} is not valid JSON`);
      throw new NotASpoolError(l.root, `cannot read ${MARKER}: ${code ?? (err as Error).message}`);
    }
  }
  if (!markerOk) {
    if (!create) throw new NotASpoolError(l.root, `no ${MARKER}`);
    let entries: string[] = [];
    try {
      const st = await stat(l.root);
      if (!st.isDirectory()) throw new NotASpoolError(l.root, 'it is not a folder');
      entries = await readdir(l.root);
    } catch (err) {
      if (err instanceof NotASpoolError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const foreign = entries.filter((e) => !(STATE_DIRS as readonly string[]).includes(e) && !(AUX_DIRS as readonly string[]).includes(e) && !e.startsWith('.'));
    if (foreign.length > 0) throw new NotASpoolError(l.root, `folder is not empty and has no ${MARKER} (found '${foreign[0]}')`);
    await mkdir(l.tmp, { recursive: true });
    const tmpMarker = join(l.tmp, `${MARKER}.${process.pid}`);
    await writeFileDurable(tmpMarker, JSON.stringify({ format: SPOOL_FORMAT, created: new Date().toISOString() }) + '\n', true);
    const { rename } = await import('node:fs/promises');
    await rename(tmpMarker, join(l.root, MARKER));
    await fsyncDir(l.root);
  }
  await Promise.all([...STATE_DIRS, ...AUX_DIRS].map((d) => mkdir(join(l.root, d), { recursive: true })));
  return l;
}
