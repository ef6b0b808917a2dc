// Metadata operations per job from `strace -f -y -o FILE -e trace=<META_CALLS>` (one line per call, file
// descriptors shown with their paths): creates, renames, links, unlinks, mkdirs, fsyncs of files and of
// folders, each put in the phase of a job's life it belongs to by the paths it names (format 2's layout,
// man/zcq-spool.5):
//   claim     a rename out of pending/ (into a lease folder)
//   lease     the heartbeat and the file-server clock probes: workers/, tmp/.hb-*, tmp/.probe-* (per worker
//             and per beat, not per job; shown so that nothing is hidden)
//   finish    everything else a worker does (record in a spare or temporary, link, renames out of claimed/,
//             folder fsyncs)
//   put       everything the producer does
// Failed calls (ENOENT of a lost race, EEXIST) are counted apart: they are round trips on NFS too.

export const META_CALLS = 'openat,creat,rename,renameat,renameat2,link,linkat,unlink,unlinkat,mkdir,mkdirat,fsync,fdatasync';
export const KINDS = ['create', 'rename', 'link', 'unlink', 'mkdir', 'fsync file', 'fsync folder'];

/** The paths a strace line names: quoted strings and fd annotations <...>. */
function pathsOf(line) {
  const out = [];
  for (const m of line.matchAll(/"([^"]*)"|<([^>]*)>/g)) out.push(m[1] ?? m[2]);
  return out;
}

/** A job file, temporary or spare (not a folder): its name ends in .json or it sits in tmp/. */
const isFilePath = (p) => /\.json$/.test(p) || /\/tmp\/[^/]+$/.test(p);

/** Which of KINDS a strace line is, or null (an open without O_CREAT, a call we do not count). */
function kindOf(call, line) {
  if (call === 'openat' || call === 'creat') return call === 'creat' || /O_CREAT/.test(line) ? 'create' : null;
  if (call.startsWith('rename')) return 'rename';
  if (call.startsWith('link')) return 'link';
  if (call.startsWith('unlink')) return /AT_REMOVEDIR/.test(line) ? null : 'unlink';
  if (call.startsWith('mkdir')) return 'mkdir';
  if (call === 'fsync' || call === 'fdatasync') {
    const p = pathsOf(line)[0] ?? '';
    return isFilePath(p) ? 'fsync file' : 'fsync folder';
  }
  return null;
}

/**
 * Count the calls under `spool` in strace output `text` by phase ('put' for a producer's trace, or split
 * into claim/finish/lease for a worker's) and kind. Returns { phase: { kind: count, failed: count } }.
 */
export function countMetaOps(text, spool, role) {
  const counts = {};
  const add = (phase, kind, failed) => {
    counts[phase] ??= Object.fromEntries([...KINDS, 'failed'].map((k) => [k, 0]));
    if (failed) counts[phase].failed++;
    else counts[phase][kind]++;
  };
  const unfinished = new Map(); // pid -> first half of a call another thread interrupted
  for (const raw of text.split('\n')) {
    // "PID call(args) = ret" (strace -f). A call interrupted by another thread's is written in two halves,
    // "PID call(args <unfinished ...>" and later "PID <... call resumed>rest) = ret": joined here.
    const pm = /^(\d+)\s+(.*)$/.exec(raw);
    if (!pm) continue;
    const [, pid, body] = pm;
    let line = body;
    if (line.endsWith('<unfinished ...>')) {
      unfinished.set(pid, line.slice(0, -'<unfinished ...>'.length));
      continue;
    }
    const r = /^<\.\.\. [a-z0-9_]+ resumed>(.*)$/.exec(line);
    if (r) {
      line = (unfinished.get(pid) ?? '') + r[1];
      unfinished.delete(pid);
    }
    const m = /^([a-z0-9_]+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
    if (!m) continue;
    const call = m[1];
    if (!line.includes(spool)) continue;
    const kind = kindOf(call, line);
    if (!kind) continue;
    const failed = Number(m[3]) < 0;
    const paths = pathsOf(line).filter((p) => p.startsWith(spool));
    let phase = role;
    if (role === 'worker') {
      if (paths.some((p) => p.includes('/workers/') || /\/tmp\/\.(hb|probe)-/.test(p))) phase = 'lease';
      else if (kind === 'rename' && paths[0]?.includes('/pending/')) phase = 'claim';
      else phase = 'finish';
    }
    add(phase, kind, failed);
  }
  return counts;
}

/** "create 1, rename 1, fsync file 1, fsync folder 1 (4)": counts per job, zeros left out. */
export function describeOps(c, n) {
  if (!c) return '0';
  const parts = KINDS.filter((k) => c[k] > 0).map((k) => `${k} ${fmt(c[k] / n)}`);
  const total = KINDS.reduce((a, k) => a + c[k], 0) / n;
  if (c.failed > 0) parts.push(`failed calls ${fmt(c.failed / n)}`);
  return `${parts.join(', ') || 'none'} (${fmt(total)})`;
}

export const totalOps = (c) => (c ? KINDS.reduce((a, k) => a + c[k], 0) : 0);

const fmt = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
