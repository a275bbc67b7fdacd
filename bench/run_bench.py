#!/usr/bin/python3
"""make bench: ternd and Debian's mosquitto side by side in one run.

Starts a release ternd and a mosquitto (each on a free loopback port, fresh processes), runs
every scenario of `tern bench` against both, alternating, REPS times, and writes
bench/results/latest.md with the medians and the ratio ternd/mosquitto, plus the loader's and
the brokers' CPU. Usage: bench/run_bench.py [--duration S] [--reps N] [--quick]"""
import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TERN = os.path.join(ROOT, "build", "release", "tern")
TERND = os.path.join(ROOT, "build", "release", "ternd")

# (label, tern bench arguments, metric)
SCENARIOS = [
    ("pairs P=100 QoS 0", ["pairs", "-P", "100", "-q", "0"], "msgs_per_s"),
    ("pairs P=100 QoS 1", ["pairs", "-P", "100", "-q", "1"], "msgs_per_s"),
    ("fanout 1->100 QoS 0", ["fanout", "-S", "100", "-q", "0"], "msgs_per_s"),
    ("fanout 1->1000 QoS 0", ["fanout", "-S", "1000", "-q", "0"], "msgs_per_s"),
    ("fanin 16->1 QoS 0", ["fanin", "-P", "16", "-q", "0"], "msgs_per_s"),
    ("fanin 1000->1 QoS 0", ["fanin", "-P", "1000", "-q", "0", "-w", "1"], "msgs_per_s"),
    ("fanin 16->1 QoS 1", ["fanin", "-P", "16", "-q", "1"], "msgs_per_s"),
    ("latency 10k/s QoS 0", ["latency", "-R", "10000", "-q", "0"], "latency"),
    ("connections 10000", ["connections", "-N", "10000"], "connections"),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_ternd(workdir):
    conf = os.path.join(workdir, "ternd.conf")
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\nlog_type error warning\nmax_queued_messages 1000\n")
    p = subprocess.Popen([TERND, "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    for line in p.stdout:
        if line.startswith("listen mqtt"):
            port = int(line.split()[3])
        if line.strip() == "ready":
            return p, port
    raise RuntimeError("ternd did not start")


def start_mosquitto(workdir):
    port = free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                "max_queued_messages 1000\nlog_type error\n")
    p = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            time.sleep(0.05)  # mosquitto prints no ready line: poll its port
    raise RuntimeError("mosquitto did not start")


def run(args, port, pid, duration):
    cmd = [TERN, "bench", *args, "-p", str(port), "-d", str(duration), "--json",
           "--broker-pid", str(pid)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 6 + 120)
    line = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not line:
        return {"error": (r.stderr or r.stdout)[-300:]}
    return json.loads(line[-1])


def metric(res, kind):
    if "error" in res:
        return None
    if kind == "latency":
        return res["latency_us"]["p999"]
    if kind == "connections":
        return res.get("connect_rate_per_s") or res.get("connects_per_s")
    return res["msgs_per_s"]


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosq = subprocess.run(["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True).stdout
    mosq = mosq.splitlines()[0] if mosq else "mosquitto ?"
    return (f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}; "
            f"loader on the same machine; {mosq}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 s, 1 repetition")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.md"))
    a = ap.parse_args()
    if a.quick:
        a.duration, a.reps = 2, 1
    work = os.path.join(ROOT, "build", "bench")
    os.makedirs(work, exist_ok=True)
    results = {}
    for label, args, kind in SCENARIOS:
        for rep in range(a.reps):
            for name in ("ternd", "mosquitto"):  # alternating, fresh broker each run
                p, port = (start_ternd if name == "ternd" else start_mosquitto)(work)
                try:
                    res = run(args, port, p.pid, a.duration)
                finally:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()
                results.setdefault(label, {}).setdefault(name, []).append(res)
                v = metric(res, kind)
                print(f"{label:24s} {name:9s} rep {rep + 1}: "
                      f"{v if v is not None else res.get('error')}", flush=True)
    lines = ["# tern bench: ternd vs mosquitto", "",
             f"Machine: {machine()}.", "",
             f"Each scenario ran {a.reps} times per broker, alternating, {a.duration} s each, "
             "fresh broker processes, 64-byte payloads; medians shown. Throughput counts only "
             "messages received. Latency column: p99.9 in microseconds (lower is better). "
             "Connections: connects per second and broker RSS per idle connection.", "",
             "| scenario | ternd | mosquitto | ratio | ternd broker CPU s | msgs per ternd CPU s | "
             "loader CPU s | lost/dup (ternd) | lost/dup (mosquitto) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, args, kind in SCENARIOS:
        r = results[label]

        def med(name, key=None, f=None):
            vals = []
            for x in r[name]:
                v = f(x) if f else (metric(x, kind) if key is None else x.get(key))
                if v is not None:
                    vals.append(v)
            return statistics.median(vals) if vals else None

        t, m = med("ternd"), med("mosquitto")
        ratio = "-"
        if t and m:
            ratio = f"{(m / t if kind == 'latency' else t / m):.2f}x"
        fmt = (lambda v: "-" if v is None else f"{v:,.0f}")
        tcpu = med("ternd", "broker_cpu_s")
        per = med("ternd", "msgs_per_broker_cpu_s")
        lcpu = med("ternd", "loader_cpu_s")
        loss = lambda n: "/".join(str(sum(x.get(k, 0) for x in r[n] if "error" not in x))
                                  for k in ("lost", "duplicates"))
        extra = ""
        if kind == "latency":
            mx_t = med("ternd", f=lambda x: x["latency_us"]["max"] if "latency_us" in x else None)
            mx_m = med("mosquitto",
                       f=lambda x: x["latency_us"]["max"] if "latency_us" in x else None)
            extra = f" (max: {fmt(mx_t)} us vs {fmt(mx_m)} us)"
        if kind == "connections":
            rss_t = med("ternd", f=lambda x: x.get("broker_bytes_per_connection"))
            rss_m = med("mosquitto", f=lambda x: x.get("broker_bytes_per_connection"))
            extra = f" (RSS/conn: {fmt(rss_t)} B vs {fmt(rss_m)} B)"
        lines.append(f"| {label}{extra} | {fmt(t)} | {fmt(m)} | {ratio} | "
                     f"{'-' if tcpu is None else f'{tcpu:.2f}'} | {fmt(per)} | "
                     f"{'-' if lcpu is None else f'{lcpu:.2f}'} | {loss('ternd')} | "
                     f"{loss('mosquitto')} |")
    lines += ["", "Raw JSON of every run: build/bench/raw.json (not committed).", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(work, "raw.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.exit(main())
