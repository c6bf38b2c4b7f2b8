#!/usr/bin/env python3
"""Samples the machine while a benchmark runs, to tell what a latency stall waited on.

  stall-probe.py record OUT SECONDS [--procs]
      every 5 ms: /proc/stat CPU totals, the CPU and I/O pressure totals (PSI), and the pages
      dirty or under writeback; with --procs also every 50 ms each process's CPU ticks
  stall-probe.py report OUT [MS]
      the MS-wide windows (default 100) with the most CPU pressure and those with the most
      I/O pressure, with idle, steal and dirty pages, and (--procs) for the worst three the
      processes that used the most CPU in them

Used by bench/intake-series.sh (PROBE=1, or PROBE=procs). Without --procs it costs a few per
cent of a core; with it about 15 %, enough to saturate a two-core machine that was not, so
compare runs with the probe only to each other.
"""
import datetime
import json
import os
import sys
import time


def psi(name):
    with open('/proc/pressure/' + name) as f:
        lines = f.read().split('\n')
    return int(lines[0].split('total=')[1]), int(lines[1].split('total=')[1])


def dirty():
    pages = {}
    with open('/proc/vmstat') as f:
        for line in f:
            k, v = line.split()
            if k in ('nr_dirty', 'nr_writeback'):
                pages[k] = int(v)
    return pages.get('nr_dirty', 0), pages.get('nr_writeback', 0)


def record(out, secs, with_procs):
    rows, procs, last = [], [], 0.0
    end = time.time() + secs
    while time.time() < end:
        t = time.time()
        with open('/proc/stat') as f:
            cpu = f.readline().split()[1:9]
        rows.append((t, cpu, psi('cpu'), psi('io'), dirty()))
        if with_procs and t - last >= 0.05:
            last, snap = t, {}
            for p in os.listdir('/proc'):
                if not p.isdigit():
                    continue
                try:
                    with open('/proc/%s/stat' % p) as f:
                        s = f.read()
                except OSError:
                    continue
                r = s[s.rindex(')') + 2:].split()
                snap[p + ':' + s[s.index('(') + 1:s.rindex(')')]] = int(r[11]) + int(r[12])
            procs.append((t, snap))
        time.sleep(0.005)
    with open(out, 'w') as f:
        for t, cpu, c, i, d in rows:
            f.write('%.4f %s %d %d %d %d %d %d\n' % (t, ' '.join(cpu), c[0], c[1], i[0], i[1], d[0], d[1]))
    if with_procs:
        with open(out + '.procs', 'w') as f:
            json.dump(procs, f)


def clock(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime('%H:%M:%S.%f')[:-3]


def report(out, width):
    hz = os.sysconf('SC_CLK_TCK')
    rows = []
    for line in open(out):
        r = line.split()
        rows.append((float(r[0]), [int(x) for x in r[1:9]], [int(x) for x in r[9:15]]))
    windows, t = [], rows[0][0]
    while t < rows[-1][0]:
        w = [r for r in rows if t <= r[0] < t + width]
        if len(w) >= 2:
            a, z = w[0], w[-1]
            d = [z[1][k] - a[1][k] for k in range(8)]
            total = sum(d) or 1
            p = [z[2][k] - a[2][k] for k in range(4)]
            windows.append((p[0] / 1000, t, 100 * d[3] / total, 100 * d[7] / total, p[2] / 1000,
                            p[3] / 1000, max(r[2][4] for r in w), max(r[2][5] for r in w)))
        t += width
    header = 'window start   cpu pressure ms  idle %  steal %  io pressure ms (some/full)  dirty/writeback pages (max)'
    line = '%s   %14.1f  %6.0f  %7.0f  %11.1f / %-6.1f  %d / %d'
    for title, key in (('most CPU pressure', 0), ('most I/O pressure', 4)):
        print('# %s\n%s' % (title, header))
        for w in sorted(windows, key=lambda w: w[key], reverse=True)[:6]:
            print(line % ((clock(w[1]), w[0]) + w[2:]))
    windows.sort(reverse=True)
    for key, name in ((0, 'cpu'), (4, 'io')):
        values = sorted(w[key] for w in windows)
        print('median %s pressure per window: %.1f ms' % (name, values[len(values) // 2]))
    if not os.path.exists(out + '.procs'):
        return
    procs = json.load(open(out + '.procs'))
    for w in windows[:3]:
        before = [p for p in procs if p[0] <= w[1]]
        after = [p for p in procs if p[0] >= w[1] + width]
        if not before or not after:
            continue
        a, z = before[-1], after[0]
        # Only processes seen at both ends: a new pid's whole life would count otherwise.
        used = sorted(((z[1][k] - a[1][k], k) for k in z[1] if k in a[1]), reverse=True)[:6]
        print('%s, over %.0f ms: %s (ms of CPU)' % (clock(w[1]), (z[0] - a[0]) * 1000,
              ', '.join('%s=%d' % (k, v * 1000 // hz) for v, k in used if v > 0)))


if __name__ == '__main__':
    if len(sys.argv) >= 4 and sys.argv[1] == 'record':
        record(sys.argv[2], float(sys.argv[3]), '--procs' in sys.argv[4:])
    elif len(sys.argv) >= 3 and sys.argv[1] == 'report':
        report(sys.argv[2], (float(sys.argv[3]) if len(sys.argv) > 3 else 100) / 1000)
    else:
        sys.exit(__doc__)
