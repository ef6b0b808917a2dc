/** `zcq show <id>`: everything about a job, failure stack included, and what it waits on and what waits on it. */
import type { Command } from 'commander';
import { describeLinks, type Related, type Relations } from '../../client/relations.js';
import { globals, line, openSpool, printJson, readIds, resolveRefs } from '../common.js';

export function register(program: Command): void {
  program.command('show <id...>')
    .description('print a job: state, fields, history, result or failure with its stack; what it waits on and what waits on it')
    .action(async (ids: string[], _o, cmd: Command) => {
      const spool = await openSpool(cmd);
      // An ambiguous prefix anywhere is a usage error before anything is printed.
      const refs = await resolveRefs(spool, await readIds(ids));
      for (const id of refs) {
        const rec = await spool.get(id);
        const progress = await spool.progress(rec.id).catch(() => null);
        const output = spool.output(rec.id);
        const relations = rec.job ? describeLinks(spool.layout, await spool.links(rec.id), rec.job) : undefined;
        if (globals(cmd).json) { printJson({ state: rec.state, path: rec.path, due: rec.dueMs ? new Date(rec.dueMs).toISOString() : undefined, corrupt: rec.corrupt, progress, output, job: rec.job, relations }); continue; }
        const j = rec.job;
        const w = (k: string, v: unknown) => { if (v !== undefined && v !== null && v !== '') line(`${k.padEnd(12)}${typeof v === 'string' ? v : JSON.stringify(v)}`); };
        w('id', rec.id); w('state', rec.state); w('file', rec.path);
        if (rec.dueMs) w('due', new Date(rec.dueMs).toISOString());
        if (rec.worker) w('worker', rec.worker);
        if (!j) { w('corrupt', rec.corrupt); continue; }
        w('fn', j.fn); w('args', j.args); w('queue', j.queue); w('created', j.created);
        w('attempts', `${j.attempts} (retries allowed: ${j.retries}; interruptions ${j.interrupts}/${j.maxInterrupts}, on interrupt: ${j.onInterrupt})`);
        w('timeout', j.timeoutMs ? `${j.timeoutMs} ms` : null); w('deadline', j.deadline); w('not before', j.notBefore); w('finished', j.finished);
        for (const h of j.history) line(`${'attempt'.padEnd(12)}#${h.attempt} ${h.outcome ?? 'running'} on ${h.host} pid ${h.pid} (${h.worker}) ${h.start} → ${h.end ?? '…'}${h.error ? ` — ${h.error}` : ''}`);
        if (relations) for (const [k, v] of relationLines(relations)) w(k, v);
        w('output', output ? `${output.path} (${output.bytes} bytes; zcq logs ${rec.id})` : 'none');
        if (progress) w('progress', `${JSON.stringify(progress.value)} (attempt ${progress.attempt}, ${progress.at})`);
        if (rec.state === 'done' || j.result !== undefined) w('result', JSON.stringify(j.result));
        if (j.failure) {
          w('failure', `${j.failure.name}: ${j.failure.message} (reason: ${j.failure.reason}${j.failure.code ? `, code ${j.failure.code}` : ''})`);
          // A stack is several lines: each is printed (and escaped) on its own, indented.
          if (typeof j.failure.stack === 'string') for (const l of j.failure.stack.split('\n')) line(`  ${l}`);
        }
      }
    });
}

const rel = (r: Related) => `${r.id} (${r.state})`;

/** The relations as [label, text] lines, in the order: what it waits on, then what waits on it. */
function relationLines(r: Relations): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (r.after) out.push(['after', r.after.map(rel).join(', ') + (r.afterAnyOutcome ? ' (runs whatever their outcome)' : '')]);
  if (r.awaits) out.push(['awaits', `${rel(r.awaits)}: the composite it returned; its outcome becomes this job's`]);
  if (r.members) out.push(['members', `${r.members.ended} of ${r.members.size} ended (group ${r.members.gid})`]);
  if (r.group) out.push(['group', `${r.group.gid} ${r.group.kind}, member ${r.group.index + 1} of ${r.group.size}; postprocess ${rel(r.group.postprocess)}`]);
  if (r.parent) out.push(['parent', rel(r.parent)]);
  if (r.waitedBy.length > 0) out.push(['waited by', r.waitedBy.map(rel).join(', ')]);
  if (r.children.length > 0) out.push(['children', r.children.map(rel).join(', ')]);
  for (const kind of ['then', 'catch'] as const) {
    const c = r[kind];
    if (!c) continue;
    const how = [c.queue ? `queue ${c.queue}` : null, c.retries !== undefined ? `retries ${c.retries}` : null].filter(Boolean).join(', ');
    out.push([kind, `${c.fn}${how ? ` (${how})` : ''}${c.job.state === 'missing' ? '' : ` → ${rel(c.job)}`}`]);
  }
  return out;
}
