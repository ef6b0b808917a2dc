#!/bin/bash
# Example: SPOOL=/tmp/s bench/micro/ab.sh 15 node OLD/bin/zcq --spool /tmp/s --relaxed put noop.mjs#noop -- node bin/zcq --spool /tmp/s --relaxed put noop.mjs#noop
TMPD=$(mktemp -d); trap 'rm -rf "$TMPD"' EXIT
# ab.sh N cmdA -- cmdB : interleaved, median CPU (user+sys) and wall of each
N=$1; shift; A=(); while [ "$1" != "--" ]; do A+=("$1"); shift; done; shift; B=("$@")
rm -f $TMPD/t.A $TMPD/t.B
for i in $(seq $N); do
  /usr/bin/time -a -o $TMPD/t.A -f "%U %S %e" "${A[@]}" >/dev/null
  /usr/bin/time -a -o $TMPD/t.B -f "%U %S %e" "${B[@]}" >/dev/null
done
python3 -c "
import statistics as st
for f in ['A','B']:
  r=[list(map(float,l.split())) for l in open('$TMPD/t.'+f) if not l.startswith('Command')]
  c=sorted(a+b for a,b,_ in r)
  print(f, 'cpu median %.3f s (%.3f-%.3f), wall median %.3f s (n=%d)'%(st.median(c), c[0], c[-1], st.median([x for _,_,x in r]), len(r)))
"
