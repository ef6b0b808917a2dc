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

echo "== parallel: count the words of the project's Markdown files, one job per file, joined by a postprocess"
mkdir -p out
for f in ../README.md ../docs/*.md ../bench/README.md; do printf '{"fn":"./jobs.mjs#countWords","args":["%s"]}\n' "$f"; done > out/count.ndjson
post=$(zcq parallel --postprocess ./jobs.mjs#mergeCounts --queue words < out/count.ndjson)
echo "$post (the postprocess: waits in waiting/words/ until every file is counted)"
zcq wait "$post"
echo "== serial: two pages, the second rendered only once the first is done; the built-in postprocess returns both entries"
printf '%s\n' '{"fn":"./jobs.mjs#render","args":[{"id":10,"title":"First"}]}' '{"fn":"./jobs.mjs#render","args":[{"id":11,"title":"Second"}]}' \
  | zcq serial --queue words --wait | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const e of JSON.parse(s))console.log(e.state, e.id, e.result.path.replace(/.*\//,""))})'
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
words=$(ls ../README.md ../docs/*.md ../bench/README.md | wc -l)
if [ "$(ls spool/done/default | wc -l)" -eq 5 ] && [ "$(ls spool/failed/default | wc -l)" -eq 1 ] && [ -s out/9.html ] \
  && [ "$(ls spool/done/words | wc -l)" -eq $((words + 1 + 3)) ] && [ -s out/11.html ]; then
  echo "== example OK: 5 done, 1 failed (as intended), out/7.html, out/8.html, out/9.html written; $words files counted in parallel and merged, 2 pages rendered in series"
else
  echo "== example FAILED: expected 5 jobs in done/default/ and 1 in failed/default/, $((words + 4)) in done/words/" >&2
  exit 1
fi
