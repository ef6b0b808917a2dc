#!/bin/bash
# CPU (user + kernel, whole process, /usr/bin/time) of one `zcq worker --concurrency 8 --exit-when-idle`
# draining N pending no-op jobs. Run with two N (e.g. 2000 and 6000): the difference over the extra jobs is
# the marginal CPU per job, without start-up and JIT warm-up.
# Usage: bench/micro/worker-cpu.sh N [relaxed|durable] [extra worker flags, e.g. --runtime inline]
set -e
HERE=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:?N}; MODE=${2:-relaxed}; shift; shift || true
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
node "$HERE/bin/zcq" init "$D/s" >/dev/null
node --input-type=module -e "
import { mkdirSync, writeFileSync } from 'node:fs';
mkdirSync('$D/s/pending/default', { recursive: true });
for (let i = 0; i < $N; i++) { const id = '0m' + String(i).padStart(9, '0') + '-bench-x'; writeFileSync('$D/s/pending/default/' + id + '.json', JSON.stringify({ zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue: 'default', created: new Date().toISOString(), attempts: 0, retries: 0, history: [] })); }"
FLAG=; [ "$MODE" = relaxed ] && FLAG=--relaxed
/usr/bin/time -f "%U %S %e" -o "$D/time" "$HERE/bin/zcq" --spool "$D/s" $FLAG worker --root "$HERE/bench/jobs" --concurrency 8 "$@" --exit-when-idle --poll 100ms 2>/dev/null
read U S E < "$D/time"
echo "$MODE n=$N $*: user $U s, kernel $S s, wall $E s, done $(ls "$D/s/done/default" 2>/dev/null | wc -l)"
