"""Disk-bound hits, scenarios (j) and (k) of tools/bench (issue 21).

Imported by tools/bench (which puts tools/ on sys.path); not a script of its
own.

An edge cache is many times larger than RAM, so most hits read the disk. To
get there on a machine whose RAM holds both caches, (j) fills a fresh pair of
proxies with the same 100 MiB objects (nginx with `aio threads`, nginx's
advice for a cache bigger than memory), then runs a dropper: a child process
on the clients' core that calls posix_fadvise(POSIX_FADV_DONTNEED) on every
file of both cache directories every 20 ms. While it runs, per proxy:

  probe alone   4 wrk connections asking one hot 64 KiB range, over and over
  probe alone, shared
                the same, while a busy loop shares the clients' core: what
                the client side leaves a probe whose client shares its core
                (as it does with the load's client below), the proxy serving
                nothing else
  load alone    8 connections of random 1 MiB ranges on 1 MiB boundaries
                over all the objects, nothing else: the disk-bound rate. Its
                client is tools/discard_load.py, which drops each body unread
                (wrk copying 1 MiB bodies took the whole clients' core at
                the rate the proxies serve)
  under load    the same probe, and at the same time that load

(k) is the same over TLS (wrk over https for the load too, HTTP/1.1; both proxies on their TLS
ports), on the same filled pair, after (j): the bytes of a TLS hit go through
user space (edgeslice reads them through io_uring, nginx with `aio threads`).

Both prove they read the disk: /proc's counters of the device under the
temporary directory (bytes read per GiB served), and fincore samples of how
much of the cache files the page cache held mid-run.
"""

import json
import os
import random
import subprocess
import sys
import time

MIB = 1024 * 1024
GIB = 1024 * MIB
DROP_INTERVAL_S = 0.020
LOAD_CONNS, PROBE_CONNS = 8, 4
PROBE_RANGE = (5000000, 5000000 + 65535)  # unaligned, inside slice 4 of the first object
DISCARD_LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "discard_load.py")

# Runs in its own process (pinned with the clients): argv interval_s dir...
DROPPER = r"""
import json, os, signal, sys, time

interval, dirs = float(sys.argv[1]), sys.argv[2:]
fds, stop = {}, False
# gap: from the start of one pass to the start of the next, rescans included
stats = dict(passes=0, files=0, mean_pass_ms=0.0, max_gap_ms=0.0, late_passes=0)


def on_term(signum, frame):
    global stop
    stop = True


def walk(d):
    for entry in os.scandir(d):
        if entry.is_dir(follow_symlinks=False):
            yield from walk(entry.path)
        elif entry.is_file(follow_symlinks=False):
            yield entry.path


def rescan():
    # Files stay open between passes (opening ~2000 files every 20 ms would
    # cost more than dropping them); new files are picked up once a second.
    seen = set()
    for d in dirs:
        for path in walk(d):
            seen.add(path)
            if path not in fds:
                try:
                    fds[path] = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
                except OSError:
                    pass
    for path in [p for p in fds if p not in seen]:
        os.close(fds.pop(path))


signal.signal(signal.SIGTERM, on_term)
try:
    os.setpriority(os.PRIO_PROCESS, 0, -10)  # keep its period while wrk saturates the core
except OSError:
    pass
# The first pass drops all that the fill left in the page cache; it is not counted.
rescan()
for fd in fds.values():
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
print("DROPPER_READY", flush=True)
last_scan, total, last_start = time.monotonic(), 0.0, None
while not stop:
    if time.monotonic() - last_scan >= 1.0:
        rescan()
        last_scan = time.monotonic()
    t0 = time.monotonic()
    if last_start is not None:
        gap = t0 - last_start
        stats["max_gap_ms"] = max(stats["max_gap_ms"], gap * 1000)
        stats["late_passes"] += gap > 1.5 * interval
    last_start = t0
    for fd in fds.values():
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    dt = time.monotonic() - t0
    total += dt
    stats["passes"] += 1
    stats["files"] = len(fds)
    time.sleep(max(0.0, interval - dt))
stats["mean_pass_ms"] = total * 1000 / max(stats["passes"], 1)
print("DROPPER_STATS " + json.dumps(stats), flush=True)
"""


def cache_files(d):
    return [os.path.join(root, n) for root, _, names in os.walk(d) for n in names
            if os.path.isfile(os.path.join(root, n))]


def resident_bytes(d):
    """(bytes of d's files in the page cache, bytes of its files), by fincore (mincore, no reads)."""
    files = cache_files(d)
    if not files:
        return 0, 0
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", *files],
                         capture_output=True, text=True, timeout=60)
    res = size = 0
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            res += int(parts[0])
            size += int(parts[1])
    return res, size


class DiskReads:
    """Bytes read from the block device that holds `path` (its /sys stat), or None if unknown."""

    def __init__(self, path):
        st = os.stat(path)
        dev = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        self.stat = f"{dev}/stat"
        self.name = os.path.basename(os.path.realpath(dev))

    def read(self):
        try:
            with open(self.stat) as f:
                return int(f.read().split()[2]) * 512  # sectors read, always 512 bytes
        except (OSError, IndexError, ValueError):
            return None


def run(bench, want, start_wrk, wrk_result):
    paths = bench.sets["j"]
    what = (f"disk-bound hits: {len(paths)} x 100 MiB, page cache dropped every "
            f"{DROP_INTERVAL_S * 1000:.0f} ms, nginx aio threads")
    labels = {"j": f"(j) {what}", "k": f"(k) TLS h1 {what}"}
    label = " and ".join(labels[k] for k in "jk" if k in want)
    proxies = {}
    dropper = None
    try:
        for kind in ("nginx", "edgeslice"):
            proxies[kind] = bench.start_proxy(kind, bench.origin_port, aio=(kind == "nginx"))
        for proc in proxies.values():
            t0 = time.monotonic()
            caches = bench.warm(proc, paths)  # every object fetched whole, every byte sha256-checked
            bench.log(f"{label}: filled {proc.name} in {time.monotonic() - t0:.0f} s: X-Cache {caches}")
            if proc.kind == "edgeslice" and "not HIT" in caches:
                bench.notes.append(f"{label}: edgeslice X-Cache after the fill (HEAD) {caches}")
        os.sync()  # dirty pages cannot be dropped; written back, they can
        dirs = {k: p.cache_dir for k, p in proxies.items()}
        dropper = start_dropper(bench, list(dirs.values()))
        wait_ready(dropper)
        for scenario in (k for k in "jk" if k in want):
            before = {k: resident_bytes(d) for k, d in dirs.items()}
            measure(bench, labels[scenario], proxies, dirs, paths, start_wrk, wrk_result, before,
                    tls=scenario == "k")
    finally:
        if dropper:
            bench.stop(dropper)
            note_dropper(bench, label, dropper)
        for proc in proxies.values():
            bench.stop_proxy(proc)


def start_dropper(bench, dirs):
    script = os.path.join(bench.dir, "dropper.py")
    with open(script, "w") as f:
        f.write(DROPPER)
    return bench.start_helper("dropper", [sys.executable, script, str(DROP_INTERVAL_S), *dirs])


def wait_ready(dropper, timeout=120):
    """Until the dropper's first pass (all the fill left in the page cache) is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not dropper.alive():
            raise RuntimeError(f"the dropper exited: {dropper.log_tail()}")
        with open(dropper.log_path, errors="replace") as f:
            if "DROPPER_READY" in f.read():
                return
        time.sleep(0.1)
    raise RuntimeError(f"the dropper's first pass took more than {timeout} s")


def note_dropper(bench, label, dropper):
    with open(dropper.log_path, errors="replace") as f:
        line = next((l for l in f if l.startswith("DROPPER_STATS ")), None)
    if not line:
        bench.failures.append(f"{label}: the dropper printed no statistics: {dropper.log_tail()}")
        return
    s = json.loads(line[len("DROPPER_STATS "):])
    bench.notes.append(
        f"{label}: dropper: {s['passes']} passes over {s['files']} files "
        f"(posix_fadvise DONTNEED on each), a pass took {s['mean_pass_ms']:.1f} ms on average; "
        f"{s['late_passes']} began more than 1.5 x {DROP_INTERVAL_S * 1000:.0f} ms after the one "
        f"before, the longest gap {s['max_gap_ms']:.0f} ms")


def measure(bench, label, proxies, dirs, paths, start_wrk, wrk_result, before, tls=False):
    m = bench.mode
    dur = m["duration"]
    load_conns, probe_conns, probe_rng = LOAD_CONNS, PROBE_CONNS, PROBE_RANGE
    load_script, load_sizes = bench.wrk_script(paths, "aligned")
    probe_script, probe_sizes = bench.wrk_script(paths[:1], probe_rng)
    disk = DiskReads(bench.dir)
    runs = {k: [] for k in proxies}      # load + probe together, for the CPU row
    alone = {k: [] for k in proxies}
    shared = {k: [] for k in proxies}    # the probe alone, a busy loop on the clients' core
    load = {k: [] for k in proxies}
    load_alone = {k: [] for k in proxies}
    probe = {k: [] for k in proxies}
    resident = {k: [] for k in proxies}  # (proxy measured, cache dir) -> bytes, mid-run
    disk_per_gib = {k: [] for k in proxies}

    def start_load(port, secs):
        """The load's client: over plain HTTP one that drops the bodies
        unread (tools/discard_load.py), so that the probe's client has the
        clients' core; over TLS, wrk."""
        if tls:
            return start_wrk(port, load_conns, secs, load_script, tls)
        obj_size = bench.objects[paths[0]][0]
        argv = [sys.executable, DISCARD_LOAD, str(port), str(load_conns), str(secs), str(obj_size),
                str(MIB)] + list(paths)
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)

    def both(port, specs, secs):
        """Start the client runs of specs (each: port, secs -> a process) at
        once; returns their results in order."""
        popens = [start(port, secs) for start in specs]
        try:
            time.sleep(secs / 2)
            mid = {k: resident_bytes(d)[0] for k, d in dirs.items()}
            return [wrk_result(p, secs) for p in popens], mid
        finally:
            for p in popens:
                if p.poll() is None:
                    p.kill()
                    p.wait()

    for rnd in range(m["rounds"]):
        order = ["nginx", "edgeslice"] if rnd % 2 == 0 else ["edgeslice", "nginx"]
        for kind in order:
            proc = proxies[kind]
            port = proc.tls_port if tls else proc.port
            res = wrk_result(start_wrk(port, probe_conns, dur, probe_script, tls), dur)
            alone[kind].append(res)
            bench.check_timed(label, kind, res, probe_sizes)
            bench.log(f"{label}: {kind} probe alone {res['rps']:.0f} req/s p99 {res['p99_ms']:.1f} ms")

            # The probe alone again, its client sharing the clients' core with
            # one busy loop (as it shares it with the load's client below): what
            # the client side leaves the probe, the proxy doing nothing else.
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
            try:
                res = wrk_result(start_wrk(port, probe_conns, dur, probe_script, tls), dur)
            finally:
                hog.kill()
                hog.wait()
            shared[kind].append(res)
            bench.check_timed(label, kind, res, probe_sizes)
            bench.log(f"{label}: {kind} probe alone, a busy loop on cpu1 too: {res['rps']:.0f} req/s "
                      f"p99 {res['p99_ms']:.1f} ms")

            res = wrk_result(start_load(port, dur), dur)
            load_alone[kind].append(res)
            bench.check_timed(label, kind, res, load_sizes)
            bench.log(f"{label}: {kind} 1 MiB ranges alone {res['rps']:.0f} req/s p99 {res['p99_ms']:.1f} ms")

            d0, meter = disk.read(), bench.meter()
            start_probe = lambda port, secs: start_wrk(port, probe_conns, secs, probe_script, tls)  # noqa: E731
            (lr, pr), mid = both(port, [start_load, start_probe], dur)
            cores, d1 = meter.stop(), disk.read()
            bench.record_rss(proc)
            for res, sizes in ((lr, load_sizes), (pr, probe_sizes)):
                bench.check_timed(label, kind, res, sizes)
            load[kind].append(lr)
            probe[kind].append(pr)
            runs[kind].append(dict(cores, bytes=lr["bytes"] + pr["bytes"],
                                   requests=lr["requests"] + pr["requests"]))
            resident[kind].append(mid)
            served = (lr["bytes"] + pr["bytes"]) / GIB
            if d0 is not None and d1 is not None and served:
                disk_per_gib[kind].append((d1 - d0) / GIB / served)
            bench.log(f"{label}: {kind} under load: 1 MiB ranges {lr['rps']:.0f} req/s p99 "
                      f"{lr['p99_ms']:.1f} ms, probe {pr['rps']:.0f} req/s p99 {pr['p99_ms']:.1f} ms, "
                      f"disk read {(d1 - d0) / MIB if d0 is not None and d1 is not None else -1:.0f} MiB, "
                      f"cpu0 {cores['cpu0']:.2f} s, cpu1 {cores['cpu1']:.0%} busy, "
                      f"cache in page cache {', '.join(f'{k} {v / MIB:.0f} MiB' for k, v in mid.items())}")

    # Checking pass, still dropping: wrk's response() sees every body of both
    # (206, exact length); not timed, buffering bodies costs wrk too much.
    load_check, _ = bench.wrk_script(paths, "aligned", check=True)
    probe_check, _ = bench.wrk_script(paths[:1], probe_rng, check=True)
    checked_load, checked_probe = {}, {}
    for kind, proc in proxies.items():
        checkers = [lambda port, secs, conns=conns, script=script: start_wrk(port, conns, secs, script, tls)
                    for conns, script in ((load_conns, load_check), (probe_conns, probe_check))]
        (checked_load[kind], checked_probe[kind]), _ = both(
            proc.tls_port if tls else proc.port, checkers, m["check_secs"])
        bench.check_checking_pass(label, f"{kind} 1 MiB ranges", checked_load[kind])
        bench.check_checking_pass(label, f"{kind} probe", checked_probe[kind])
    bench.note_checking_pass(label, checked_load, " of the 1 MiB ranges")
    bench.note_checking_pass(label, checked_probe, " of the probe")
    # Samples from Python while the dropper runs: bytes read back from the disk.
    rnd = random.Random(len(paths))
    for proc in proxies.values():
        for _ in range(3):
            start = rnd.randrange(100) * MIB
            bench.check_fetch(proc, rnd.choice(paths), (start, start + MIB - 1), tls=tls)
        bench.check_fetch(proc, paths[0], probe_rng, tls=tls)
        bench.sha_checked += 4

    def mean(rs, key):
        return sum(r[key] for r in rs) / len(rs) if rs else float("nan")

    def failed(kind):
        return any(r.get("failed") for rs in (alone, shared, load_alone, load, probe) for r in rs[kind]) or \
            checked_load[kind].get("failed", False) or checked_probe[kind].get("failed", False)

    def keeps(kind, of=alone, rs=probe):
        a = mean(of[kind], "rps")
        return mean(rs[kind], "rps") / a if a else float("nan")

    rows = [
        (f"load req/s: random 1 MiB ranges, {load_conns} conns", load, "rps", "higher"),
        ("load p99 ms", load, "p99_ms", "lower"),
        ("load req/s alone (no probe)", load_alone, "rps", "higher"),
        ("load p99 ms alone", load_alone, "p99_ms", "lower"),
        (f"probe req/s alone: one 64 KiB range, {probe_conns} conns", alone, "rps", "higher"),
        ("probe req/s under load", probe, "rps", "higher"),
        ("probe p99 ms under load", probe, "p99_ms", "lower"),
    ]
    for i, (metric, rs, key, better) in enumerate(rows):
        row = (label, metric, mean(rs["nginx"], key), mean(rs["edgeslice"], key), better)
        bench.rows.append(row + ((failed("nginx"), failed("edgeslice")) if i == 0 else ()))
    bench.rows.append((label, "probe under load / alone (issue 21: edgeslice >= 0.5)",
                       keeps("nginx"), keeps("edgeslice"), "higher"))
    # On one client core the client side caps what the probe can keep: these
    # two rows show that cap and the share kept against it.
    bench.rows.append((label, "probe alone, a busy loop on the clients' core / alone (the clients' cap)",
                       keeps("nginx", rs=shared), keeps("edgeslice", rs=shared), "higher"))
    bench.rows.append((label, "probe under load / probe alone with that busy loop",
                       keeps("nginx", of=shared), keeps("edgeslice", of=shared), "higher"))
    bench.cpu_row(label, runs, per_request=False)

    def most(kind):
        return max((r[kind] for rs in resident.values() for r in rs), default=0) / MIB

    sizes = {k: resident_bytes(d)[1] / MIB for k, d in dirs.items()}
    bench.notes.append(
        f"{label}: disk read per GiB served under load ({disk.name}): "
        + ", ".join(f"{k} {', '.join(f'{x:.2f}' for x in v) or 'n/a'}" for k, v in disk_per_gib.items())
        + "; page cache held of the cache files (fincore) "
        + ", ".join(f"{k} {before[k][0] / MIB:.0f} MiB after the first drops, at most {most(k):.0f} MiB "
                    f"mid-run, of {sizes[k]:.0f} MiB" for k in dirs))
