#!/usr/bin/env bash
# The bundled example: put a few jobs into spool-example/spool, run one worker until nothing is left,
# then show what happened. Run it from anywhere: `npm run example` (which builds first) or this script.
set -euo pipefail
cd "$(dirname "$0")"
zcq() { node ../bin/zcq "$@"; }
export ZCQ_SPOOL="$PWD/spool"

rm -rf spool out
zcq init >/dev/null
echo "== putting jobs"
zcq put ./jobs.mjs#render '{"id":7,"title":"Seven"}'
zcq put ./jobs.mjs#render '{"id":8,"title":"Eight & more"}'
zcq put ./jobs.mjs#slow --args-json '[4,150]' --timeout 10s
zcq put ./jobs.mjs#flaky --args-json '[2]' --retries 3 --backoff 200ms
zcq put ./jobs.mjs#broken 'no such customer'
later=$(zcq put ./jobs.mjs#render '{"id":9,"title":"Later"}' --in 3s)
echo "$later (deferred: due in 3 s)"

echo "== running a worker until the spool is idle (the deferred job is not due yet, so it waits)"
zcq worker --root . --concurrency 2 --poll 200ms --exit-when-idle
echo "== ls spool/deferred/*/*/   (queue/minute bucket/due-ms.id.json)"
ls spool/deferred/*/*/

echo "== a worker in the background, and zcq wait for the deferred job"
node ../bin/zcq worker --root . --poll 200ms &
worker=$!
zcq wait "$later"
kill -TERM "$worker"
wait "$worker"

echo "== zcq ls"
zcq ls
echo "== zcq status"
zcq status
echo "== ls spool/done/default spool/failed/default   (state/queue/id.json)"
ls spool/done/default spool/failed/default
echo "== the failed job"
zcq show "$(zcq ls failed --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].id))')"
if [ "$(ls spool/done/default | wc -l)" -eq 5 ] && [ "$(ls spool/failed/default | wc -l)" -eq 1 ] && [ -s out/9.html ]; then
  echo "== example OK: 5 done, 1 failed (as intended), out/7.html, out/8.html, out/9.html written"
else
  echo "== example FAILED: expected 5 jobs in done/ and 1 in failed/" >&2
  exit 1
fi
