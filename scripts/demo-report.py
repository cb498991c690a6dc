#!/usr/bin/env python3
"""make demo's ending: the table of configured against observed shares per
step, and a PNG chart of each version's share of new connections over time.

    demo-report.py LOAD STEPS OUTDIR

LOAD: "TIME SOURCE VERSION" per connection (scripts/demo-load.py); STEPS:
"START END EXPECTED_CANARY_PERCENT LABEL..." per step. A step's observed
share counts the connections that started in it, after its first second
(the change itself is instant; the second leaves the command's own output
out). Writes OUTDIR/shares.dat, OUTDIR/steps.tsv and OUTDIR/demo-shares.png
(with gnuplot), and prints the table.
"""
import subprocess
import sys


def main():
    load, steps_file, outdir = sys.argv[1:4]
    conns = []
    for line in open(load):
        p = line.split()
        if len(p) == 3:
            conns.append((float(p[0]), p[2]))
    steps = []
    for line in open(steps_file):
        p = line.split(None, 3)
        if len(p) == 4:
            steps.append((float(p[0]), float(p[1]), float(p[2]), p[3].strip()))
    if not conns or not steps:
        print("demo: no load or no steps recorded", file=sys.stderr)
        return 1
    t0 = steps[0][0]

    rows = []
    print(f"\n{'step':<44} {'canary configured':>18} {'canary observed':>16} {'connections':>12}"
          f" {'failed':>7}")
    for start, end, want, label in steps:
        seen = [v for t, v in conns if start + 1.0 <= t < end]
        ok = [v for v in seen if v != "failed"]
        canary = sum(1 for v in ok if v == "canary")
        obs = 100.0 * canary / len(ok) if ok else float("nan")
        rows.append((label, want, obs, len(ok), len(seen) - len(ok)))
        print(f"{label:<44} {want:>17.1f}% {obs:>15.1f}% {len(ok):>12} {len(seen) - len(ok):>7}")
    with open(f"{outdir}/steps.tsv", "w") as f:
        f.write("step\tconfigured_canary_percent\tobserved_canary_percent\tconnections\tfailed\n")
        for r in rows:
            f.write("%s\t%.1f\t%.1f\t%d\t%d\n" % r)

    # one-second buckets: each version's share of the new connections
    last = max(t for t, _ in conns)
    with open(f"{outdir}/shares.dat", "w") as f:
        f.write("# seconds stable% canary% configured_canary%\n")
        b = t0
        while b < last:
            seen = [v for t, v in conns if b <= t < b + 1 and v != "failed"]
            want = next((w for s, e, w, _ in steps if s <= b < e), float("nan"))
            if seen:
                c = sum(1 for v in seen if v == "canary")
                f.write("%.1f %.1f %.1f %.1f\n" % (b - t0, 100.0 * (len(seen) - c) / len(seen),
                                                    100.0 * c / len(seen), want))
            b += 1
    labels = "".join(
        f'set label {i + 1} "{lab.split(":")[0]}" at {s - t0 + 0.3},105 rotate by 90 right '
        'font ",8"\n' for i, (s, e, w, lab) in enumerate(steps))
    gp = f"""set terminal pngcairo size 1100,520
set output "{outdir}/demo-shares.png"
set title "kshift demo: each version's share of new connections (1 s buckets)"
set xlabel "seconds"
set ylabel "% of new connections"
set yrange [0:140]
set ytics 0,20,100
set key bottom right
set grid ytics
{labels}
plot "{outdir}/shares.dat" using 1:2 with steps lw 2 title "stable (observed)", \\
     "" using 1:3 with steps lw 2 title "canary (observed)", \\
     "" using 1:4 with steps lw 1 dt 2 lc rgb "black" title "canary (configured)"
"""
    r = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True)
    if r.returncode:
        print("demo: gnuplot: " + r.stderr.strip(), file=sys.stderr)
        return 1
    print(f"\nchart: {outdir}/demo-shares.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
