#!/usr/bin/env python3
"""Interleaved CPU time of two or more commands, to the microsecond (os.wait4's rusage; /usr/bin/time
prints 10 ms steps, too coarse for a process start of ~100 ms).

  bench/micro/ab-cpu.py [--json] N CMD_A... -- CMD_B... [-- CMD_C...]

Runs A, B, (C), A, B, ... N times each, output to /dev/null; prints per command the median and range of
user+sys CPU and the median wall time, and each median's ratio to the first command's. --json: one JSON line instead, a list of
{"cpuMs": [...], "wallMs": [...]} in command order (bench/run.mjs's cli section reads it)."""
import json, os, statistics, sys, time

def main():
    args = sys.argv[1:]
    as_json = args[:1] == ['--json']
    if as_json:
        args = args[1:]
    n = int(args[0])
    cmds, cur = [], []
    for a in args[1:]:
        if a == '--':
            cmds.append(cur); cur = []
        else:
            cur.append(a)
    cmds.append(cur)
    cpu = [[] for _ in cmds]
    wall = [[] for _ in cmds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    for _ in range(n):
        for i, c in enumerate(cmds):
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:
                os.dup2(devnull, 1)
                os.execvp(c[0], c)
            _, status, ru = os.wait4(pid, 0)
            wall[i].append(time.monotonic() - t0)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f'{" ".join(c)}: exit {os.waitstatus_to_exitcode(status)}')
            cpu[i].append(ru.ru_utime + ru.ru_stime)
    if as_json:
        print(json.dumps([{'cpuMs': [x * 1000 for x in cpu[i]], 'wallMs': [x * 1000 for x in wall[i]]} for i in range(len(cmds))]))
        return
    base = statistics.median(cpu[0])
    for i, c in enumerate(cmds):
        m = statistics.median(cpu[i])
        print(f'{chr(65 + i)} cpu median {m * 1000:.1f} ms ({min(cpu[i]) * 1000:.1f}-{max(cpu[i]) * 1000:.1f}), '
              f'wall median {statistics.median(wall[i]) * 1000:.0f} ms, {m / base:.2f}x A  (n={n}) {" ".join(c)[:100]}')

main()
