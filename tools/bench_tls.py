"""TLS and HTTP/2 scenarios (f)-(i) of tools/bench (issue 13).

Imported by tools/bench (which puts tools/ on sys.path); not a script of its
own. tools/tls-clients uses make_cert() and client_context() too.

Both proxies get one extra TLS listener on the same server (block) as their
plain one, with the same self-signed certificate made here by openssl:
nginx `listen ... ssl http2` (or `ssl` + `http2 on` from 1.25.1), edgeslice
`tls_listen`/`tls_cert`/`tls_key`. Caches are filled over the plain listener;
only the timed runs, the checking passes and the sampled sha256 checks go over
TLS.

  (f) wrk over https (HTTP/1.1: wrk offers no ALPN), warm 10 MiB objects
  (g) wrk over https, warm random 64 KiB ranges of a 100 MiB object
  (h) h2load (offers h2 by ALPN), warm 10 MiB objects
  (i) h2load, one fixed 64 KiB range (h2load sends the same headers on every
      request) of each 100 MiB object

h2load gives no percentiles and no bodies to Lua, so for (h) and (i): timed
runs with -D check the protocol, status classes, failed/errored within the
streams cut when the duration ends, and DATA bytes against the bodies; then a
checking pass with -n N must end with N succeeded, 0 failed, 0 errored and
exactly N bodies' bytes of DATA; 3 sampled answers per proxy are fetched with
`curl --http2` (which must report HTTP/2) and compared by sha256.
"""

import hashlib
import http.client
import os
import re
import shutil
import ssl
import statistics
import subprocess

MIB = 1024 * 1024
# (i): one fixed, unaligned 64 KiB range inside a 1 MiB slice (slice 4 is
# bytes 4194304-5242879), asked of every 100 MiB object.
H2_RANGE = (5000000, 5000000 + 65535)
H2_CONNS, H2_STREAMS = 16, 4


# ---------------------------------------------------------------- certificate and configs

def make_cert(d, name="tls"):
    """A self-signed P-256 certificate for localhost and 127.0.0.1; returns (cert, key).

    Valid 30 days: edgeslice warns about a certificate that ends within 14.
    """
    cert, key = os.path.join(d, f"{name}-cert.pem"), os.path.join(d, f"{name}-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)  # nginx workers may run as another user
    return cert, key


def nginx_version():
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def nginx_tls_lines(port, cert, key):
    """Lines for the peer's server block: a TLS listener with h2 beside the plain one."""
    if nginx_version() >= (1, 25, 1):
        listen = f"    listen 127.0.0.1:{port} ssl;\n    http2 on;\n"
    else:  # Debian 12's 1.22: http2 is a listen parameter
        listen = f"    listen 127.0.0.1:{port} ssl http2;\n"
    return (f"{listen}"
            f"    ssl_certificate {cert};\n"
            f"    ssl_certificate_key {key};\n"
            f"    ssl_protocols TLSv1.2 TLSv1.3;\n"
            f"    ssl_session_cache shared:TLS:10m;\n")


def edgeslice_tls_lines(port, cert, key):
    """Lines for edgeslice's [server] table."""
    return f'tls_listen = "127.0.0.1:{port}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'


# ---------------------------------------------------------------- clients

def client_context(alpn=("http/1.1",)):
    """Client TLS context for the self-signed certificate: verification off."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


_CTX = None


def connection(port, tls, timeout):
    """http.client connection to 127.0.0.1:port, over TLS (ALPN http/1.1) if tls."""
    global _CTX
    if not tls:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if _CTX is None:
        _CTX = client_context()
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=_CTX)


def curl_h2(port, path, out_path, rng=None, timeout=120):
    """GET over h2 with curl; returns (http_version, status, body bytes)."""
    argv = ["curl", "--http2", "-sk", "--max-time", str(timeout), "-o", out_path,
            "-w", "%{http_version} %{http_code}"]
    if rng:
        argv += ["-H", f"Range: bytes={rng[0]}-{rng[1]}"]
    argv.append(f"https://127.0.0.1:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    version, _, status = out.stdout.strip().partition(" ")
    body = b""
    if os.path.exists(out_path):
        with open(out_path, "rb") as f:
            body = f.read()
        os.remove(out_path)
    return version, int(status or 0), body


def run_h2load(port, paths, conns, streams, duration=None, requests=None, headers=(), timeout=None):
    """One h2load run over https (h2 by ALPN), 1 thread; returns its numbers."""
    # One thread: the clients share one core (tools/bench pins them to it).
    argv = ["h2load", "-t", "1", "-c", str(conns), "-m", str(streams)]
    if duration:
        argv += ["-D", str(duration)]
    else:
        argv += ["-n", str(requests)]
    for h in headers:
        argv += ["-H", h]
    argv += [f"https://127.0.0.1:{port}{p}" for p in paths]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout or (duration or 0) + 180)
    text = out.stdout

    def grab(pattern, n):
        m = re.search(pattern, text)
        if not m:
            raise RuntimeError(f"h2load ({out.returncode}) output without /{pattern}/: "
                               f"{text[-1500:]} {out.stderr[-1500:]}")
        return [float(x) if "." in x else int(x) for x in m.groups()[:n]]

    proto = re.search(r"Application protocol: (\S+)", text)
    secs = grab(r"finished in ([\d.]+)(m?s),", 1)[0]
    if re.search(r"finished in [\d.]+ms,", text):
        secs /= 1000
    total, started, done, ok, failed, errored, timeouts = grab(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout", 7)
    s2, s3, s4, s5 = grab(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", 4)
    tbytes, hbytes, dbytes = grab(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers.*?\((\d+)\) data", 3)
    return dict(proto=proto.group(1) if proto else "none", secs=secs, total=total, started=started,
                done=done, succeeded=ok, failed=failed, errored=errored, timeout=timeouts,
                s2xx=s2, s3xx=s3, s4xx=s4, s5xx=s5, bytes=tbytes, data=dbytes,
                rps=ok / secs if secs else 0.0, mibs=tbytes / MIB / secs if secs else 0.0,
                argv=" ".join(argv[:9]))


def h2load_problem(res, body_size, in_flight, exact=None):
    """What is wrong with an h2load run, or None.

    Timed runs (-D) end by cutting the streams in flight, which h2load counts
    as failed and errored: at most `in_flight` of them. A checking run
    (-n exact) must have every request succeed and DATA add up exactly.
    """
    if res["proto"] != "h2":
        return f"negotiated {res['proto']}, not h2"
    # h2load counts a status when the head arrives: streams cut by -D may have one.
    if (res["s3xx"] or res["s4xx"] or res["s5xx"]
            or not res["succeeded"] <= res["s2xx"] <= (exact or res["started"])):
        return (f"status codes {res['s2xx']} 2xx {res['s3xx']} 3xx {res['s4xx']} 4xx "
                f"{res['s5xx']} 5xx for {res['succeeded']} succeeded of {res['started']} started")
    if res["timeout"]:
        return f"{res['timeout']} timed out"
    if exact is not None:
        if res["succeeded"] != exact or res["failed"] or res["errored"]:
            return (f"{res['succeeded']} of {exact} succeeded, {res['failed']} failed, "
                    f"{res['errored']} errored")
        if res["data"] != exact * body_size:
            return f"{res['data']} bytes of DATA for {exact} bodies of {body_size}"
        return None
    if res["succeeded"] == 0:
        return "no request succeeded"
    if res["failed"] > in_flight or res["errored"] > in_flight:
        return (f"{res['failed']} failed, {res['errored']} errored: more than the {in_flight} "
                f"streams in flight when the run ends")
    low, high = res["succeeded"] * body_size, res["started"] * body_size
    if not low <= res["data"] <= high:
        return f"{res['data']} bytes of DATA for {res['succeeded']} bodies of {body_size} ({res['started']} started)"
    return None


# ---------------------------------------------------------------- scenarios

def missing_tools(want):
    missing = []
    if want & set("fghi") and not shutil.which("openssl"):
        missing.append("openssl")
    if want & set("hi"):
        missing += [t for t in ("h2load", "curl") if not shutil.which(t)]
    return missing


def setup(bench, want):
    """Certificate and ports before the proxies start; header line for the report."""
    bench.tls_cert, bench.tls_key = make_cert(bench.dir)
    bench.header_extra.append(
        "TLS: one self-signed P-256 certificate for both; nginx `listen ... ssl http2`, "
        "ssl_protocols TLSv1.2 TLSv1.3, default ciphers, ssl_session_cache, no kTLS; edgeslice "
        "tls_listen (rustls). Caches filled over plain HTTP. (f),(g): wrk over https, HTTP/1.1 "
        f"(wrk offers no ALPN). (h),(i): {h2load_version()}, 1 thread, {H2_CONNS} connections x "
        f"{H2_STREAMS} streams, default windows (-w 30 -W 30); it reports no p99.")


def run(bench, proxies, want):
    m = bench.mode
    if "f" in want:
        bench.warm_scenario(proxies, "(f) TLS h1: warm 10 MiB objects over HTTPS, 16 conns",
                            bench.sets["10m"][:m["b_objs"]], 16, tls=True)
    if "g" in want:
        bench.warm_scenario(proxies, "(g) TLS h1: warm random 64 KiB ranges of 100 MiB over HTTPS, 64 conns",
                            bench.sets["100m"][:1], 64, ranged=True, tls=True)
    if "h" in want:
        h2_scenario(bench, proxies, f"(h) h2: warm 10 MiB objects, {H2_CONNS} conns x {H2_STREAMS} streams",
                    bench.sets["10m"][:m["b_objs"]], None)
    if "i" in want:
        h2_scenario(bench, proxies,
                    f"(i) h2: warm 64 KiB ranges, fixed Range bytes={H2_RANGE[0]}-{H2_RANGE[1]} of "
                    f"{len(bench.sets['100m'])} x 100 MiB, {H2_CONNS} conns x {H2_STREAMS} streams",
                    bench.sets["100m"], H2_RANGE)


def h2_scenario(bench, proxies, label, paths, rng):
    for proc in proxies.values():
        caches = bench.warm(proc, sorted(set(paths)))
        bench.log(f"{label}: warmed {proc.name}: X-Cache after warm-up {caches}")
        if proc.kind == "edgeslice" and "not HIT" in caches:
            bench.notes.append(f"{label}: edgeslice X-Cache after warm-up (HEAD) {caches}")
    body = rng[1] - rng[0] + 1 if rng else bench.objects[paths[0]][0]
    headers = [f"Range: bytes={rng[0]}-{rng[1]}"] if rng else []
    in_flight = H2_CONNS * H2_STREAMS
    runs = {"nginx": [], "edgeslice": []}
    failed = {"nginx": False, "edgeslice": False}

    def fail(kind, msg):
        failed[kind] = True
        msg = f"{label}: {kind} FAILED: {msg}"
        bench.log(msg)
        bench.failures.append(msg)

    for rnd in range(bench.mode["rounds"]):
        order = ["nginx", "edgeslice"] if rnd % 2 == 0 else ["edgeslice", "nginx"]
        for kind in order:
            proc = proxies[kind]
            meter = bench.meter()
            try:
                res = run_h2load(proc.tls_port, paths, H2_CONNS, H2_STREAMS,
                                 duration=bench.mode["duration"], headers=headers)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                fail(kind, str(e)[:600])
                continue
            res.update(meter.stop(), requests=res["succeeded"])
            bench.record_rss(proc)
            bench.log(f"{label}: {kind} {res['rps']:.0f} req/s {res['mibs']:.0f} MiB/s, "
                      f"{res['succeeded']} succeeded, {res['failed']} failed, {res['errored']} errored, "
                      f"protocol {res['proto']}, cpu0 {res['cpu0']:.2f} s, cpu1 {res['cpu1']:.0%} busy")
            problem = h2load_problem(res, body, in_flight)
            if problem:
                fail(kind, problem)
            else:
                runs[kind].append(res)
    # Checking pass: a fixed number of requests, every one must succeed and
    # DATA must be exactly that many bodies.
    n = max(in_flight, (bench.mode["check_secs"] * 128 * MIB) // body)
    checked = {}
    for kind in ("nginx", "edgeslice"):
        try:
            res = run_h2load(proxies[kind].tls_port, paths, H2_CONNS, H2_STREAMS, requests=n,
                             headers=headers, timeout=300)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            fail(kind, f"checking pass: {str(e)[:600]}")
            continue
        checked[kind] = res
        problem = h2load_problem(res, body, in_flight, exact=n)
        if problem:
            fail(kind, f"checking pass: {problem}")
    bench.notes.append(f"{label}: checking pass (h2load -n {n}; every request must succeed, "
                       f"DATA = {n} x {body} bytes): " + ", ".join(
                           f"{k} {r['succeeded']} succeeded / {r['failed']} failed / {r['errored']} "
                           f"errored" for k, r in checked.items()))
    for proc in proxies.values():
        try:
            sample_check_h2(bench, proc, paths, rng)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            fail(proc.kind, str(e)[:600])

    def agg(kind, key):
        return statistics.mean(r[key] for r in runs[kind]) if runs[kind] else float("nan")

    bench.rows.append((label, "req/s", agg("nginx", "rps"), agg("edgeslice", "rps"), "higher",
                       failed["nginx"], failed["edgeslice"]))
    bench.rows.append((label, "MiB/s", agg("nginx", "mibs"), agg("edgeslice", "mibs"), "higher"))
    bench.cpu_row(label, runs, per_request=rng is not None)


def sample_check_h2(bench, proc, paths, rng, n=3):
    """n answers fetched with curl --http2, compared by sha256 with the files."""
    for i in range(n):
        path = paths[i % len(paths)]
        out = os.path.join(bench.dir, f"curl-{proc.name}.body")
        version, status, body = curl_h2(proc.tls_port, path, out, rng)
        want_len, want_sha = bench.expected_sha(path, rng)
        got = hashlib.sha256(body).hexdigest()
        want_status = 206 if rng else 200
        if version != "2" or status != want_status or len(body) != want_len or got != want_sha:
            raise RuntimeError(f"{proc.name} curl --http2 GET {path} range={rng}: HTTP/{version} "
                               f"{status}, {len(body)} bytes, sha256 {got[:16]}; expected HTTP/2 "
                               f"{want_status}, {want_len} bytes, sha256 {want_sha[:16]}")
    bench.sha_checked += n


def h2load_version():
    if not shutil.which("h2load"):
        return "h2load (not installed)"
    out = subprocess.run(["h2load", "--version"], capture_output=True, text=True)
    return out.stdout.strip() or "h2load ?"
