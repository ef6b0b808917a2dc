// Issue 17: a GlusterFS replica 2 volume without cluster.favorite-child-policy leaves a folder that several
// machines made at once in gfid split-brain now and then (a different gfid on each brick): EIO through every
// mount, for good (docs/nfs.md). zcq's own makers take turns (spool/modes.ts), but other tools do not.
// One such queue folder must cost only its own jobs: workers go on serving the other queues, and the
// operators' commands report it and go on.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkRigPrerequisites, rigFileSystems } from './rig.js';
import {
  JOBS, MH_FIXTURES, NODE, putMany, serverJobNames, serverSpool, spoolOn, startWorker, stopWorkers, waitFor, zcqOn, useSpoolRig,
} from './zcq-rig.js';

checkRigPrerequisites({ needFaketime: false });

const kinds = rigFileSystems().filter((k) => k === 'gluster-replica');
// A run of the rig on other file systems only (ZCQ_RIG_FS) has nothing to run here: say so, not "no suite".
if (kinds.length === 0) describe.skip('a queue folder in gfid split-brain (GlusterFS replica only, not in this run)', () => { it('needs gluster-replica', () => {}); });

for (const fsKind of kinds) describe(`a queue folder in gfid split-brain (${fsKind} without favorite-child-policy)`, () => {
  const { rig, local } = useSpoolRig({ machines: 3, fs: fsKind, glusterVolumeOptions: { 'cluster.favorite-child-policy': 'none' } });

  it('workers go on serving the other queues; ls, status and doctor list the rest, name what they could not read, and exit as usual', async () => {
    // Make split folders the way they happen: three machines making the same queue folders at once (zcq's
    // own makers take turns: spool/modes.ts; other tools, like this fixture, do not).
    let split: string[] = [];
    let how = 'by racing mkdir';
    const answersEio = (name: string) => { try { fs.lstatSync(join(serverSpool(rig), 'pending', name)); return false; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EIO'; } };
    for (let round = 0; round < 4 && split.length === 0; round++) {
      const names = Array.from({ length: 100 }, (_, k) => `r${round}s${k}`);
      const startAt = Date.now() + 2000;
      const runs = await Promise.all([0, 1, 2].map((i) => rig.run(i, NODE, [join(MH_FIXTURES, 'mkdir-race.mjs'), join(spoolOn(rig, i), 'pending'), String(startAt), '60', names.join(',')], { timeoutMs: 60_000 })));
      for (const r of runs) expect(r.code, r.stderr).toBe(0);
      // A folder in split-brain answers EIO through every mount, the server's own included.
      split = names.filter(answersEio);
    }
    if (split.length === 0) {
      // No race split a folder (a loaded machine makes the three racers less simultaneous): leave on the
      // bricks what such a race leaves — a different trusted.gfid on each brick, and the parent marked by
      // each brick as needing an entry heal from the other. A mount that knew pending/ before may not
      // learn of the marks, so fewer readers meet the EIO than after a real race; the checks below hold.
      how = 'by marking the bricks as a race does';
      split = ['sb0', 'sb1', 'sb2'];
      for (const name of split) fs.mkdirSync(join(serverSpool(rig), 'pending', name));
      const brick = (b: 1 | 2, ...parts: string[]) => join(rig.tmpDir, 'bricks', `b${b}`, 'spool', 'pending', ...parts);
      const entryPending = '000000000000000000000001'; // AFR changelog: data, metadata, entry
      const marks: Array<[string, string, string]> = [
        ...split.map((name): [string, string, string] => [brick(2, name), 'trusted.gfid', randomBytes(16).toString('hex')]),
        [brick(1), `trusted.afr.${rig.volume}-client-1`, entryPending],
        [brick(2), `trusted.afr.${rig.volume}-client-0`, entryPending],
      ];
      for (const [path, key, hex] of marks) {
        const r = spawnSync('python3', ['-c', 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))', path, key, hex], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
      }
      await waitFor(() => split.every(answersEio), 10_000, 'every marked folder answers EIO');
    }
    const ok = await putMany(rig, 1, 20, `${JOBS}#record`, [join(local.dir, 'ok.ledger'), 0], { relaxed: true });
    const w = startWorker(rig, 0, ['--concurrency', '4', '--lease', '8s', '--heartbeat', '1s', '--poll', '200ms']);
    await waitFor(() => { const d = new Set(serverJobNames(rig, 'done')); return ok.every((id) => d.has(`${id}.json`)); }, 60_000, 'the 20 jobs of the healthy queue done')
      .catch((err) => { throw new Error(`${err.message}\n${w.output()}`); });
    // Jobs put after the worker's next passes (each lists pending/ and looks at every queue folder) run too:
    // it did not take the mount for gone.
    await new Promise((res) => setTimeout(res, 2000));
    const later = await putMany(rig, 2, 10, `${JOBS}#record`, [join(local.dir, 'ok.ledger'), 0], { relaxed: true });
    await waitFor(() => { const d = new Set(serverJobNames(rig, 'done')); return later.every((id) => d.has(`${id}.json`)); }, 60_000, 'the 10 jobs put later done')
      .catch((err) => { throw new Error(`${err.message}\n${w.output()}`); });
    await stopWorkers([w]);
    const ev = w.events();
    expect(ev.filter((e) => e.event === 'spool.unreachable'), w.output()).toEqual([]);
    const reported = ev.filter((e) => e.event === 'folder.unreadable').map((e) => String(e.path).split('/').pop());
    // Reported once each where the worker met one (a lookup that answered EIO; a listing with entry
    // attributes, which a worker polling pending/ refreshes, can spare it the lookup), and only those.
    expect(new Set(reported).size, 'one line per broken folder').toBe(reported.length);
    for (const name of reported) expect(split).toContain(name);
    // Through another mount: each reader lists what it can and exits 0; a folder whose EIO it met is named
    // on stderr (whether a given look at a split folder answers EIO varies with the mount's caches: the
    // lookup does, a listing through a handle already open may not).
    const named = (stderr: string) => [...stderr.matchAll(/\/pending\/([^/:]+): cannot be read \(EIO\)/g)].map((m) => m[1]!);
    let warned = 0;
    for (const args of [['ls'], ['status'], ['--json', 'status']]) {
      const r = await zcqOn(rig, 2, args);
      expect(r.code, `zcq ${args.join(' ')}: ${r.stderr}`).toBe(0);
      for (const name of named(r.stderr)) expect(split).toContain(name);
      warned += named(r.stderr).length;
    }
    const ls = await zcqOn(rig, 2, ['ls', 'done']);
    expect(ls.code, ls.stderr).toBe(0);
    for (const id of [...ok, ...later]) expect(ls.stdout).toContain(id);
    // doctor checks the rest and reports what it could not read (exit 0 or 1: problems found), never fails on it.
    const doc = await zcqOn(rig, 2, ['--json', 'doctor']);
    expect([0, 1], doc.stderr).toContain(doc.code);
    const problems = (JSON.parse(doc.stdout) as { problems: Array<{ kind: string; path: string }> }).problems;
    for (const p of problems.filter((x) => x.kind === 'unreadable queue')) expect(split).toContain(p.path.split('/').pop());
    console.log(`[split-brain] ${fsKind}: ${split.length} queue folder(s) in split-brain (${how}); a worker served 30 jobs beside them and reported ${reported.length}; ls and status exited 0 and named ${warned} on stderr; doctor reported ${problems.filter((x) => x.kind === 'unreadable queue').length}`);
  }, 240_000);
});
