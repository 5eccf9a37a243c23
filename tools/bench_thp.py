#!/usr/bin/env python3
"""O_DIRECT reads into huge-page memory against 4 KiB pages (src/disk/arena.rs).

Writes a file of --size-mib under --dir (default: the system's temporary
directory), then alternates rounds of random 1 MiB-aligned 1 MiB O_DIRECT
reads from it, --threads at once, each thread reading into one 1 MiB window
of its own memory: "huge" advises that memory MADV_HUGEPAGE (one 2 MiB page
holds the window: one physically contiguous run), "4k" leaves it in 4 KiB
pages (256 runs, as a heap buffer). For each round it prints the rate and,
from the disk's /sys/block/<dev>/stat, the mean request size and time.

    tools/bench_thp.py --rounds 3 --seconds 3

Python 3 standard library only; the file is removed at the end.
"""
import argparse
import ctypes
import mmap
import os
import random
import tempfile
import threading
import time

MiB = 1 << 20


def disk_of(path):
    """The /sys/block/<dev>/stat of the device holding path (whole disk), or None."""
    st = os.stat(path)
    sys_dev = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    try:
        real = os.path.realpath(sys_dev)
    except OSError:
        return None
    for cand in (os.path.join(real, "stat"), os.path.join(os.path.dirname(real), "stat")):
        if os.path.exists(cand) and os.path.exists(os.path.join(os.path.dirname(cand), "queue")):
            return cand
    return None


def stat(path):
    return [int(x) for x in open(path).read().split()] if path else None


def reader(path, huge, seconds, seed, out):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    mem = mmap.mmap(-1, 4 * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if huge:
        mem.madvise(mmap.MADV_HUGEPAGE)
    view = memoryview(mem)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    start = (-addr) % (2 * MiB)  # a window at the start of a 2 MiB-aligned page
    window = view[start:start + MiB]
    window[:] = bytes(MiB)  # fault it in before timing
    blocks = os.fstat(fd).st_size // MiB
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    got = 0
    while time.monotonic() < end:
        got += os.preadv(fd, [window], rng.randrange(blocks) * MiB)
    out.append(got)
    window.release()
    view.release()
    os.close(fd)


def round_(path, dev, huge, seconds, threads):
    before, t0, out = stat(dev), time.monotonic(), []
    ts = [threading.Thread(target=reader, args=(path, huge, seconds, i, out)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt, after = time.monotonic() - t0, stat(dev)
    line = f"{'huge' if huge else '4k':>4}  {sum(out) / MiB / dt:7.0f} MiB/s"
    if before and after:
        reqs, sectors, ms = after[0] - before[0], after[2] - before[2], after[3] - before[3]
        line += f"  mean request {sectors * 512 / 1024 / max(reqs, 1):5.0f} KiB, {ms / max(reqs, 1):.2f} ms"
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2, help="reads in flight (edgeslice's disk_reads_per_worker)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    fd, path = tempfile.mkstemp(prefix="edgeslice-thp-", dir=args.dir)
    try:
        chunk = os.urandom(MiB)
        for _ in range(args.size_mib):
            os.write(fd, chunk)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        dev = disk_of(path)
        thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip()
        print(f"{args.size_mib} MiB file on {dev or 'an unknown device'}; transparent huge pages: {thp}")
        for _ in range(args.rounds):
            round_(path, dev, True, args.seconds, args.threads)
            round_(path, dev, False, args.seconds, args.threads)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
