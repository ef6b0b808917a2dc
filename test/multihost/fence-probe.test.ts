// A probe, run only on request (ZCQ_PROBE_FENCE=1): does renaming a lease folder away fence a client that
// keeps renaming files into it through its old path? zcq's recovery relies on it (recover.ts step 1). On a
// GlusterFS volume (distributed or replicated) it does not at once: renames through the old path go on succeeding for
// hundreds of ms and land in the folder's new place, after the mover listed it (docs/nfs.md, GlusterFS).
// This is why recovery lists a folder again when it will not go away, and why a worker audits its own
// lease folder (transitions/audit.ts). It prints what it saw and asserts only that every file is somewhere.
//   ZCQ_PROBE_FENCE=1 ZCQ_RIG_FS=gluster-dist npx vitest run test/multihost/fence-probe.test.ts   (~35 s)
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkRigPrerequisites, rigFileSystems, useRig } from './rig.js';

const PROBE = process.env.ZCQ_PROBE_FENCE === '1';
if (PROBE) checkRigPrerequisites();
const NODE = process.execPath;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// GlusterFS only: sshfs caches listings, so the counts below would not be exact there.
for (const fsKind of PROBE ? rigFileSystems().filter((k) => k !== 'sshfs') : ['gluster-dist' as const]) describe.skipIf(!PROBE)(`fence probe (${fsKind})`, () => {
  const rig = useRig({ machines: 3, fs: fsKind });

  it('renames into a folder through its old path while another machine renames the folder away', async () => {
    const ROUNDS = 8, N = 60;
    for (const d of ['c', 'c/ME', 'p']) fs.mkdirSync(rig.path(0, d));
    const lines: string[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const d = `D${r}`;
      fs.mkdirSync(rig.path(0, 'c', d));
      for (let k = 0; k < N; k++) fs.writeFileSync(rig.path(0, 'p', `r${r}k${k}`), 'x');
      // host-c: one rename into c/D every ~3 ms, each with the time it returned.
      const c = rig.spawn(2, NODE, ['-e', `const fs=require('fs'),p=require('path');const root=${JSON.stringify(rig.path(2))};const out=[];
        for(let k=0;k<${N};k++){try{fs.renameSync(p.join(root,'p','r${r}k'+k),p.join(root,'c','${d}',k+'.r${r}k'+k+'.json'));out.push('ok@'+Date.now())}catch(e){out.push(e.code+'@'+Date.now())} if(k===3)console.log('go'); const t=Date.now(); while(Date.now()-t<3){} }
        console.log(out.join(' '))`]);
      let o = '';
      const closed = new Promise<void>((res) => c.on('close', () => res()));
      c.stdout!.on('data', (b: Buffer) => { o += b; });
      while (!o.includes('go')) await sleep(1);
      // host-b: take the folder (recovery's step 1) and list it at once (its step 2).
      const taken = rig.path(1, 'c', 'ME', `${d}.dead`);
      fs.renameSync(rig.path(1, 'c', d), taken);
      const tRename = Date.now();
      const first = fs.readdirSync(taken).length;
      await closed;
      await sleep(300);
      const later = fs.readdirSync(taken);
      const outs = o.split('\n')[1]!.trim().split(' ');
      const ok = outs.filter((x) => x.startsWith('ok@'));
      const okAfter = ok.filter((x) => Number(x.slice(3)) > tRename).length;
      const left = fs.readdirSync(rig.path(1, 'p')).filter((n) => n.startsWith(`r${r}k`)).length;
      lines.push(`${d}: ${ok.length} renames succeeded, ${okAfter} of them after the folder rename returned; listed ${first} at once, ${later.length} after 300 ms; ${left} not moved`);
      expect(later.length + left).toBe(N); // each file in exactly one of the two places
      expect(later.length).toBe(ok.length);
      for (const n of later) fs.unlinkSync(`${taken}/${n}`);
      fs.rmdirSync(taken);
    }
    console.log(`[fence probe ${fsKind}]\n${lines.join('\n')}`);
  }, 120_000);
});
