#!/usr/bin/env python3
"""Compare vigil-ecg's QRS detector with published detectors on MIT-BIH.

Runs, on channel 0 of every record in DATA_DIR:
  - vigil-ecg, via the `ec57` example (`--beats` writes its detections);
  - wfdb.processing.XQRS (the WFDB Python package's detector);
  - NeuroKit2's default detector (nk.ecg_peaks, method "neurokit"), if installed;
and scores all of them with the same EC57/bxb rules (150 ms window, from
5 min, beat codes N L R a V F J A S E j / Q B ? ! e n f r), printing a
markdown table of Se, +P and speed.

Usage (from the repository root):
  pip install wfdb neurokit2
  cargo build --release -p vigil-ecg --example ec57
  python3 tools/ecg/compare.py ../shared/data/mitdb [--target-dir target]

Data: MIT-BIH Arrhythmia Database (Moody & Mark 2001; Goldberger et al. 2000).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import wfdb
from wfdb import processing

BEATS = set("NLRaVFJASEj/QB?!enfr")


def score(ref, det, window, start):
    """Greedy nearest matching in time order, as vigil_ecg::eval::score."""
    ref = np.asarray(sorted(ref), dtype=np.int64)
    det = np.asarray(sorted(det), dtype=np.int64)
    tp = fn = fp = 0
    j = 0
    for i, r in enumerate(ref):
        while j < len(det) and det[j] + window < r:
            fp += det[j] >= start
            j += 1
        matched = False
        if j < len(det) and abs(det[j] - r) <= window:
            nr = ref[i + 1] if i + 1 < len(ref) else None
            k = j
            while (k + 1 < len(det) and abs(det[k + 1] - r) <= window
                   and abs(det[k + 1] - r) < abs(det[k] - r)
                   and (nr is None or abs(det[k + 1] - r) <= abs(det[k + 1] - nr))):
                fp += det[k] >= start
                k += 1
            j = k + 1
            matched = True
        if r >= start:
            if matched:
                tp += 1
            else:
                fn += 1
    fp += int(np.sum(det[j:] >= start))
    return tp, fn, fp


def pct(a, b):
    return 100.0 * a / b if b else 100.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--records", nargs="*", help="subset of records (default: all)")
    ap.add_argument("--no-neurokit", action="store_true")
    args = ap.parse_args()

    names = sorted(f[:-4] for f in os.listdir(args.data_dir) if f.endswith(".atr"))
    if args.records:
        names = [n for n in names if n in args.records]

    exe = os.path.join(args.target_dir, "release", "examples", "ec57")
    if not os.path.exists(exe):
        sys.exit(f"{exe} not found: cargo build --release -p vigil-ecg --example ec57")
    beats_dir = tempfile.mkdtemp(prefix="vigil-ecg-beats-")
    out = subprocess.run([exe, args.data_dir, "--beats", beats_dir],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"= ([0-9.]+) M samples/s", out)
    vigil_speed = float(m.group(1)) * 1e6 if m else float("nan")

    try:
        import neurokit2 as nk  # noqa: F401
        have_nk = not args.no_neurokit
    except ImportError:
        have_nk = False

    detectors = ["vigil-ecg", "XQRS"] + (["NeuroKit2"] if have_nk else [])
    totals = {d: [0, 0, 0] for d in detectors}
    secs = {d: 0.0 for d in detectors}
    nsamp = 0
    rows = []
    for name in names:
        path = os.path.join(args.data_dir, name)
        rec = wfdb.rdrecord(path, channels=[0])
        ann = wfdb.rdann(path, "atr")
        fs = rec.fs
        sig = rec.p_signal[:, 0]
        nsamp += len(sig)
        ref = [s for s, c in zip(ann.sample, ann.symbol) if c in BEATS]
        window, start = round(0.150 * fs), round(300 * fs)
        dets = {}
        dets["vigil-ecg"] = np.loadtxt(os.path.join(beats_dir, f"{name}.txt"), dtype=np.int64, ndmin=1)
        t = time.perf_counter()
        x = processing.XQRS(sig=sig, fs=fs)
        x.detect(verbose=False)
        secs["XQRS"] += time.perf_counter() - t
        dets["XQRS"] = x.qrs_inds
        if have_nk:
            import neurokit2 as nk
            t = time.perf_counter()
            _, info = nk.ecg_peaks(sig, sampling_rate=fs)
            secs["NeuroKit2"] += time.perf_counter() - t
            dets["NeuroKit2"] = info["ECG_R_Peaks"]
        row = [name]
        for d in detectors:
            tp, fn, fp = score(ref, dets[d], window, start)
            for k, v in enumerate((tp, fn, fp)):
                totals[d][k] += v
            row.append(f"{pct(tp, tp + fn):.2f} / {pct(tp, tp + fp):.2f}")
        rows.append(row)
        print(f"{name} done", file=sys.stderr)

    print("| record | " + " | ".join(f"{d} Se / +P %" for d in detectors) + " |")
    print("|---|" + "---:|" * len(detectors))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    g = ["**gross**"]
    for d in detectors:
        tp, fn, fp = totals[d]
        g.append(f"**{pct(tp, tp + fn):.2f} / {pct(tp, tp + fp):.2f}** (FN {fn}, FP {fp})")
    print("| " + " | ".join(g) + " |")
    print()
    print("| detector | samples/s (one core) |")
    print("|---|---:|")
    print(f"| vigil-ecg (Rust, streaming) | {vigil_speed / 1e6:.1f} M |")
    for d in detectors[1:]:
        print(f"| {d} (Python) | {nsamp / secs[d] / 1e6:.2f} M |")


if __name__ == "__main__":
    main()
