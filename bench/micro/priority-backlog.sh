#!/usr/bin/env bash
# A priority-0 job put behind N pending priority-9 jobs (issue 13): how long from its put to its done, with a
# worker already running. Usage: bash bench/micro/priority-backlog.sh [N=1000000] [RUNS=3]
# (npm run build first). Fills a relaxed spool in a temp folder with putMany (about 110 s for 1,000,000 here).
set -euo pipefail
N=${1:-1000000}; RUNS=${2:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/zcq-prio-XXXXXX); trap 'kill $W 2>/dev/null || true; rm -rf "$dir"' EXIT
printf 'export function noop() { return 1; }\nexport function mark(x) { return x; }\n' > "$dir/jobs.mjs"
node --input-type=module -e "
import { Spool } from '$here/dist/index.js';
await Spool.init('$dir/sp');
const sp = await Spool.open('$dir/sp', { durable: false });
const t0 = Date.now();
for (let i = 0; i < $N; i += 1000) await sp.putMany(Array.from({ length: Math.min(1000, $N - i) }, () => ({ fn: './jobs.mjs#noop', args: [] })), { priority: 9 });
console.log('filled $N priority-9 jobs in', Date.now() - t0, 'ms');
"
sync; sleep 3
"$here/bin/zcq" --spool "$dir/sp" --relaxed worker --concurrency 4 --poll 500ms --root "$dir" > "$dir/w.log" 2>&1 & W=$!
sleep 3
for r in $(seq 1 "$RUNS"); do
  t1=$(date +%s%N)
  id=$("$here/bin/zcq" --spool "$dir/sp" --relaxed put ./jobs.mjs#mark "\"p0-$r\"" --priority 0)
  t2=$(date +%s%N)
  until grep -q "job.done id=$id" "$dir/w.log"; do sleep 0.01; done
  t3=$(date +%s%N)
  echo "run $r: put returned after $(( (t2 - t1) / 1000000 )) ms; done $(( (t3 - t2) / 1000000 )) ms after the put returned (poll 500 ms)"
done
