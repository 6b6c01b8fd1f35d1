#!/usr/bin/env python3
"""spout's side-by-side benchmark: the Docker daemon's own speed, spout, and Docker's gelf driver,
measured in one run on one machine. bench/README.md says what each figure means."""

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

IMAGE = "spout-bench:busybox"
PREFIX = "spout-bench-"
# Every GELF message from a benchmark container, spout's or the driver's, holds this once.
PATTERN = b'"_container_name":"' + PREFIX.encode()
END = "spout-bench-end"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DOCKER_SOCK = "/var/run/docker.sock"
MP = multiprocessing.get_context("fork")

LATENCY_STEPS = 300_000

# How long a count may stand still before a measurement gives up on the rest (UDP loses).
STALL_S = 15.0


# ---------------------------------------------------------------- receivers


class Sink:
    """A GELF receiver in its own process that counts benchmark messages as they arrive, and with
    `latency`, records each message's delay from its Docker timestamp to its arrival."""

    def __init__(self, kind, target, latency=False, numbered=0, pattern=PATTERN):
        self.kind = kind
        self.pattern = pattern
        self.count = MP.Value("q", 0, lock=False)
        # With `numbered`: how often each line number 0..numbered-1 arrived (lines start with
        # their number, `%08d`), so that what was lost and what came twice can be told.
        self.seen = MP.RawArray("B", numbered) if numbered else None
        self.first_at = MP.Value("d", 0.0, lock=False)
        self.last_at = MP.Value("d", 0.0, lock=False)
        self.done_at = MP.Value("d", 0.0, lock=False)
        # With `latency`: how many messages arrived with each delay, in 0.1 ms steps (the last
        # step holds every delay of 30 s or more).
        self.latencies = MP.RawArray("q", LATENCY_STEPS) if latency else None
        sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, sock_type)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if kind == "udp":
            try:  # room for bursts while this process is descheduled; needs root
                self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.sock.bind(("127.0.0.1", 0))
        if kind == "tcp":
            self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.target = target
        self.proc = MP.Process(target=self._run, daemon=True)
        self.proc.start()
        self.sock.close()

    def close(self):
        self.proc.terminate()
        self.proc.join()

    def _counted(self, n):
        if n == 0:
            return
        now = time.monotonic()
        if self.count.value == 0:
            self.first_at.value = now
        self.count.value += n
        self.last_at.value = now
        if self.count.value >= self.target and self.done_at.value == 0.0:
            self.done_at.value = now

    def _message(self, payload):
        """One whole GELF message (JSON)."""
        if self.seen is not None:
            # Fluent Bit's GELF carries no container name: a numbered line is one of ours.
            at = payload.find(b'"short_message":"')
            digits = payload[at + 17:at + 25] if at >= 0 else b""
            if digits.isdigit() and int(digits) < len(self.seen):
                n = int(digits)
                self.seen[n] = min(self.seen[n] + 1, 255)
                self._counted(1)
            return
        if self.latencies is None:
            self._counted(payload.count(self.pattern))
            return
        if self.pattern not in payload:
            return
        delay = time.time() - float(json.loads(payload)["timestamp"])
        self.latencies[min(max(int(delay * 10_000), 0), LATENCY_STEPS - 1)] += 1
        self._counted(1)

    def _run(self):
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        if self.kind == "tcp":
            self._run_tcp()
        else:
            self._run_udp()

    def _run_tcp(self):
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        tails = {}
        keep = len(self.pattern) - 1
        while True:
            for key, _ in sel.select():
                sock = key.fileobj
                if sock is self.sock:
                    conn, _ = sock.accept()
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                    sel.register(conn, selectors.EVENT_READ)
                    tails[conn] = b""
                    continue
                data = sock.recv(1 << 20)
                if not data:
                    sel.unregister(sock)
                    sock.close()
                    del tails[sock]
                    continue
                if self.latencies is not None or self.seen is not None:
                    frames = (tails[sock] + data).split(b"\0")
                    tails[sock] = frames.pop()
                    for frame in frames:
                        self._message(frame)
                    continue
                # Count without framing: a match is either inside this read or spans its start.
                joined = tails[sock] + data[:keep]
                self._counted(data.count(self.pattern) + joined.count(self.pattern))
                tails[sock] = data[-keep:]

    def _run_udp(self):
        # Counting datagrams keeps this receiver cheap: one message is one datagram, or one
        # datagram with chunk number 0. Every 1000th message is decompressed and checked.
        chunks = {}
        seen = 0
        while True:
            data = self.sock.recv(65535)
            if data[:2] == b"\x1e\x0f":
                if self.latencies is None and seen % 1000:
                    seen += data[10] == 0
                    self._counted(data[10] == 0)
                    continue
                msg_id, seq, total = data[2:10], data[10], data[11]
                parts = chunks.setdefault(msg_id, {})
                parts[seq] = data[12:]
                if len(parts) < total:
                    continue
                del chunks[msg_id]
                data = b"".join(parts[i] for i in range(total))
            elif self.latencies is None and seen % 1000:
                seen += 1
                self._counted(1)
                continue
            seen += 1
            if data[:1] == b"\x1f":
                data = zlib.decompress(data, 31)
            elif data[:1] == b"\x78":
                data = zlib.decompress(data)
            if PATTERN not in data:
                raise SystemExit(f"not a benchmark message: {data[:200]!r}")
            self._message(data)


def percentile(sink, p):
    """The delay (s) that `p` % of a latency sink's messages arrived within (nearest rank)."""
    counts = list(sink.latencies)
    rank = -(-sum(counts) * p // 100)
    if rank == 0:
        return None
    total = 0
    for step, n in enumerate(counts):
        total += n
        if total >= rank:
            return (step + 1) / 10_000
    return None


def lost_and_repeated(sink):
    """Of a numbered sink: the line numbers that never arrived, and the arrivals past the first."""
    seen = bytes(sink.seen)
    return seen.count(0), sum(seen) - (len(seen) - seen.count(0))


def wait_for(sink, stall_s=STALL_S):
    """Waits until the sink has its target, or its count stands still for `stall_s`."""
    last, since = -1, time.monotonic()
    while sink.done_at.value == 0.0:
        n = sink.count.value
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > stall_s:
            return False
        time.sleep(0.02)
    return True


# ---------------------------------------------------------------- processes


def proc_cpu_s(pid):
    """User plus system CPU seconds of a process, or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def dockerd_pid():
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out and proc_cpu_s(int(out[0])) is not None else None


class Agent:
    """A log agent under measure, as a process: its CPU and memory, and stopping it."""

    name = "agent"

    def __init__(self, args):
        self.state = tempfile.TemporaryDirectory(prefix="spout-bench-")
        self.log = open(os.path.join(self.state.name, "agent.log"), "wb")
        self.proc = subprocess.Popen(args(self.state.name), stdout=self.log, stderr=subprocess.STDOUT)

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def peak_rss_mib(self):
        return proc_status_kib(self.proc.pid, "VmHWM") / 1024

    def rss_mib(self):
        return proc_status_kib(self.proc.pid, "VmRSS") / 1024

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        with open(self.log.name, "rb") as f:
            log = f.read().decode(errors="replace").splitlines()
        self.state.cleanup()
        errors = [l for l in log if "ERROR" in l or "[error]" in l]
        if errors:
            print(f"  {self.name} logged errors: {errors[:3]}", file=sys.stderr)
        return log


class Spout(Agent):
    """spout itself, started from the release build with a fresh state directory."""

    name = "spout"

    def __init__(self, binary, routes, backlog=False, source="auto"):
        def args(state):
            return [binary, "--state-dir", state, "--http", "off", "--log-level", "warn",
                    "--source", source, *(["--backlog"] if backlog else []), *routes]
        super().__init__(args)


class FluentBit(Agent):
    """Fluent Bit's tail input and GELF TCP output (../shared/peers/fluent-bit.md), reading
    either one container's whole file or following every container's log as it grows."""

    name = "fluent-bit"

    def __init__(self, binary, parsers, port, path=None):
        backlog = path is not None
        tail = [f"Path {path}", "Read_from_Head On", "Buffer_Chunk_Size 256k", "Buffer_Max_Size 1m"] if backlog \
            else ["Path /var/lib/docker/containers/*/*-json.log", "Tag docker.*", "Refresh_Interval 1",
                  "Rotate_Wait 5", "DB {state}/tail.db", "Read_from_Head Off", "Mem_Buf_Limit 8M"]

        def args(state):
            conf = os.path.join(state, "fluent-bit.conf")
            lines = ["[SERVICE]", "    Flush 1", "    Log_Level warn", f"    Parsers_File {parsers}",
                     "[INPUT]", "    Name tail", "    Parser docker", *("    " + t.format(state=state) for t in tail),
                     "[OUTPUT]", "    Name gelf", "    Match *", "    Host 127.0.0.1", f"    Port {port}",
                     "    Mode tcp", "    Gelf_Short_Message_Key log"]
            with open(conf, "w") as f:
                f.write("\n".join(lines) + "\n")
            return [binary, "-c", conf]
        super().__init__(args)


# ---------------------------------------------------------------- docker


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}…: {out.stderr.strip()}")
    return out.stdout.strip()


def build_image():
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
    if busybox is None:
        sys.exit("busybox not found: install Debian's busybox-static")
    with tempfile.TemporaryDirectory() as d:
        with open(busybox, "rb") as src, open(os.path.join(d, "busybox"), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(d, "busybox"), 0o755)
        with open(os.path.join(d, "Dockerfile"), "w") as f:
            f.write('FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n')
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, d], check=True, capture_output=True,
                       env={**os.environ, "DOCKER_BUILDKIT": "0"})


def remove_bench_containers():
    ids = docker("ps", "-aq", "--filter", f"name=^{PREFIX}").split()
    if ids:
        docker("rm", "-f", *ids)


def lines_script(n, size, then="exit 0"):
    """A shell script writing `n` lines of `size` bytes (newline included), numbered."""
    pad = size - 10
    return (f"awk 'BEGIN{{p=sprintf(\"%0{pad}d\",0); for(i=0;i<{n};i++) printf \"%08d %s\\n\", i, p}}'; "
            f"{then}")


# Containers' logs are not rotated mid-run however the daemon's defaults rotate (two files, so
# that the daemon would rotate rather than truncate in place).
LOG_OPTS = ["--log-opt", "max-size=2g", "--log-opt", "max-file=2"]


def run_writer(name, n, size):
    """A running container that has written `n` lines and then END, and now sleeps."""
    cid = docker("run", "-d", "--name", name, *LOG_OPTS, IMAGE, "sh", "-c",
                 lines_script(n, size, f"echo {END}; exec sleep 86400"))
    while docker("logs", "--tail", "1", cid) != END:
        time.sleep(0.2)
    return cid


def parallel(fn, items, workers=8):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


# ---------------------------------------------------------------- measurements


def span(results, key):
    """The smallest and the largest of a figure over runs, as `a–b` (or `a` if they are one)."""
    lo, hi = min(r[key] for r in results), max(r[key] for r in results)
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ceiling(cid, lines):
    """The daemon serving a finished container's log through the API, as curl reads it."""
    dpid = dockerd_pid()
    d0 = proc_cpu_s(dpid) if dpid else None
    t0 = time.monotonic()
    out = subprocess.run(
        f"curl -s --unix-socket {DOCKER_SOCK} 'http://localhost/containers/{cid}/logs?stdout=1&stderr=1&timestamps=1'"
        " | wc -l", shell=True, capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - t0
    got = int(out.stdout.strip())
    if got < lines:
        print(f"  ceiling read {got} of {lines} lines", file=sys.stderr)
    dcpu = proc_cpu_s(dpid) - d0 if dpid else None
    return {"time": elapsed, "rate": lines / elapsed, "dockerd_cpu": per_100k(dcpu, lines)}


def per_100k(cpu_s, lines):
    return None if cpu_s is None else cpu_s * 100_000 / lines


def backlog(start, kind, lines, pattern=PATTERN):
    """An agent started by `start(port)` shipping what is already in the benchmark containers'
    logs; timed from its start to the receiver's last line."""
    sink = Sink(kind, lines, pattern=pattern)
    dpid = dockerd_pid()
    d0 = proc_cpu_s(dpid) if dpid else None
    t0 = time.monotonic()
    agent = start(sink.port)
    try:
        complete = wait_for(sink)
        end = sink.done_at.value if complete else sink.last_at.value
        result = {
            "time": end - t0,
            "rate": sink.count.value / (end - t0),
            "cpu": per_100k(agent.cpu_s(), lines),
            "rss": agent.peak_rss_mib(),
            "dockerd_cpu": per_100k(proc_cpu_s(dpid) - d0, lines) if dpid else None,
            "lost": lines - sink.count.value,
        }
    finally:
        agent.stop()
        sink.close()
    if result["cpu"] is not None and result["dockerd_cpu"] is not None:
        result["both_cpu"] = result["cpu"] + result["dockerd_cpu"]
    return result


def spout_backlog(binary, kind, lines, route_options="", source="auto"):
    """spout --backlog shipping what is already in the logs of the running benchmark containers."""
    return backlog(lambda port: Spout(binary, [f"gelf+{kind}://127.0.0.1:{port}{route_options}"], backlog=True,
                                      source=source), kind, lines)


def fluent_bit_backlog(fb, cid, lines):
    """Fluent Bit reading one container's whole json-file log to GELF TCP. Its messages carry no
    container name: every message is counted (it reads nothing else)."""
    path = docker("inspect", "-f", "{{.LogPath}}", cid)
    return backlog(lambda port: FluentBit(*fb, port, path=path), "tcp", lines, pattern=b'"short_message":"')


def driver(kind, compression, lines):
    """Docker's own gelf log driver writing `lines` lines of ~100 bytes to a counting receiver."""
    sink = Sink(kind, lines)
    opts = ["--log-driver", "gelf", "--log-opt", f"gelf-address={kind}://127.0.0.1:{sink.port}"]
    if kind == "udp":
        opts += ["--log-opt", f"gelf-compression-type={compression}"]
    name = f"{PREFIX}driver-{kind}-{compression}"
    try:
        docker("run", "-d", "--name", name, *opts, IMAGE, "sh", "-c", lines_script(lines, 100))
        wait_for(sink, stall_s=5.0)
        span = sink.last_at.value - sink.first_at.value
        return {"rate": (sink.count.value - 1) / span if span > 0 else None, "lost": lines - sink.count.value}
    finally:
        docker("rm", "-f", name, check=False)
        sink.close()


def w2_burst(binary, containers, lines_each, source="auto", agent=True):
    """Many containers started at once, with spout already following them (or, without `agent`,
    no agent at all: what writing the logs costs the daemon)."""
    total = containers * lines_each
    sink = Sink("tcp", total) if agent else None
    spout = Spout(binary, [f"gelf+tcp://127.0.0.1:{sink.port}"], source=source) if agent else None
    names = [f"{PREFIX}w2-{i}" for i in range(containers)]
    try:
        parallel(lambda n: docker("create", "--name", n, *LOG_OPTS, IMAGE, "sh", "-c", lines_script(lines_each, 100)),
                 names)
        time.sleep(1)  # spout has seen the create events
        dpid = dockerd_pid()
        d0 = proc_cpu_s(dpid) if dpid else None
        t0 = time.monotonic()
        parallel(lambda n: docker("start", n), names, workers=containers)
        parallel(lambda n: docker("wait", n), names, workers=containers)
        written = time.monotonic() - t0
        if not agent:
            return {"dockerd_cpu": per_100k(proc_cpu_s(dpid) - d0, total) if dpid else None}
        complete = wait_for(sink)
        end = sink.done_at.value if complete else sink.last_at.value
        return {
            "written": written,
            "time": end - t0,
            "ratio": (end - t0) / written,
            "lost": total - sink.count.value,
            "cpu": per_100k(spout.cpu_s(), total),
            "rss": spout.peak_rss_mib(),
            "dockerd_cpu": per_100k(proc_cpu_s(dpid) - d0, total) if dpid else None,
        }
    finally:
        if spout:
            spout.stop()
        if sink:
            sink.close()
        docker("rm", "-f", *names, check=False)


def wait_quiet(sink, quiet_s):
    """Waits until the sink's count has stood still for `quiet_s`."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        n = sink.count.value
        if n != last:
            last, since = n, time.monotonic()
        time.sleep(0.05)


def docker_time(text):
    """Docker's RFC 3339 time (nanoseconds, Z) as seconds since the epoch."""
    date, frac = (text.rstrip("Z").split(".") + ["0"])[:2]
    whole = datetime.datetime.fromisoformat(date).replace(tzinfo=datetime.timezone.utc).timestamp()
    return whole + float("0." + frac)


ROTATING = ["--log-opt", "max-size=1m", "--log-opt", "max-file=3"]


def rotation(start, lines):
    """An agent following a container that writes `lines` numbered lines of 100 bytes as fast as
    it can, its log rotated every megabyte and only three files kept: which lines never arrive,
    and which arrive more than once. `start(port)` starts the agent."""
    sink = Sink("tcp", lines, numbered=lines)
    agent = start(sink.port)
    name = f"{PREFIX}rotation"
    try:
        time.sleep(2)  # attached to the daemon, or past its first scan of the directory
        docker("run", "-d", "--name", name, *ROTATING, IMAGE, "sh", "-c", lines_script(lines, 100))
        docker("wait", name)
        began, ended = docker("inspect", "-f", "{{.State.StartedAt}} {{.State.FinishedAt}}", name).split()
        wait_quiet(sink, 5.0)
        lost, repeated = lost_and_repeated(sink)
    finally:
        log = agent.stop()
        sink.close()
        docker("rm", "-f", name, check=False)
    warned = sum("lost" in line and ("WARN" in line or "[warn]" in line) for line in log)
    mb_s = lines * 100 / 1e6 / max(docker_time(ended) - docker_time(began), 1e-3)
    return {"lost": lost, "repeated": repeated, "warned": warned, "mb_s": mb_s}


def steady(start, containers, seconds, pattern=PATTERN):
    """`containers` containers writing a numbered line every 10 ms each for `seconds`, an agent
    following them (`start(port)`, or None for no agent at all): CPU per 100k lines, the agent's
    memory as it goes, and each line's delay from its Docker timestamp to the receiver."""
    each = seconds * 100
    total = containers * each
    script = (f"mkfifo /tick; exec 3<>/tick; i=0; while [ $i -lt {each} ]; do "
              f"printf '%08d steady\\n' $i; i=$((i+1)); read -t 0.01 -u 3 _; done")
    names = [f"{PREFIX}steady-{i}" for i in range(containers)]
    sink = Sink("tcp", total, latency=True, pattern=pattern) if start else None
    agent = start(sink.port) if start else None
    rss = []
    try:
        parallel(lambda n: docker("create", "--name", n, *LOG_OPTS, IMAGE, "sh", "-c", script), names)
        time.sleep(2)
        dpid = dockerd_pid()
        d0 = proc_cpu_s(dpid) if dpid else None
        a0 = agent.cpu_s() if agent else None
        parallel(lambda n: docker("start", n), names, workers=containers)
        waits = ThreadPoolExecutor(containers)
        done = [waits.submit(docker, "wait", n) for n in names]
        while not all(d.done() for d in done):
            time.sleep(1)
            if agent and len(rss) < 10_000:
                rss.append(agent.rss_mib())
        waits.shutdown()
        if sink:
            wait_for(sink)
        dockerd = proc_cpu_s(dpid) - d0 if dpid else None
        cpu = agent.cpu_s() - a0 if agent else None
        arrived = sink.count.value if sink else None
        p50, p99 = (percentile(sink, 50), percentile(sink, 99)) if sink else (None, None)
    finally:
        if agent:
            agent.stop()
        if sink:
            sink.close()
        docker("rm", "-f", *names, check=False)
    # Memory after the first fifth of the run (start-up and attach done), and at its end.
    settled = rss[len(rss) // 5:] or rss
    return {
        "cpu": per_100k(cpu, total),
        "dockerd_cpu": per_100k(dockerd, total),
        "rss_range": (min(settled), max(settled)) if settled else None,
        "lost": None if arrived is None else total - arrived,
        "p50": p50,
        "p99": p99,
        "lines": total,
    }


def w4_idle(binary, containers, seconds):
    """spout following many containers that write nothing."""
    names = [f"{PREFIX}w4-{i}" for i in range(containers)]
    sink = Sink("tcp", 1)
    spout = None
    try:
        parallel(lambda n: docker("run", "-d", "--name", n, IMAGE, "sleep", "86400"), names)
        spout = Spout(binary, [f"gelf+tcp://127.0.0.1:{sink.port}"])
        time.sleep(5)  # every container attached
        slices = []
        step = seconds / 3
        for _ in range(3):
            c0, t0 = spout.cpu_s(), time.monotonic()
            time.sleep(step)
            slices.append((spout.cpu_s() - c0) / (time.monotonic() - t0))
        return {"cpu_per_s": median(slices), "rss": spout.rss_mib(), "peak_rss": spout.peak_rss_mib()}
    finally:
        if spout:
            spout.stop()
        sink.close()
        docker("rm", "-f", *names, check=False)


def w5_attach(binary, containers, exits):
    """From a container's first line, as Docker stamps it, to its arrival at the receiver. The
    containers either keep running after that line (a service) or exit at once (a job)."""
    sink = Sink("tcp", containers, latency=True)
    spout = Spout(binary, [f"gelf+tcp://127.0.0.1:{sink.port}"])
    names = [f"{PREFIX}w5-{i}" for i in range(containers)]
    script = "echo hello" if exits else "echo hello; exec sleep 86400"
    try:
        time.sleep(1)
        for n in names:
            docker("run", "-d", "--name", n, IMAGE, "sh", "-c", script)
        wait_for(sink)
        lost = containers - sink.count.value
        if lost:
            print(f"  W5: {lost} first lines did not arrive", file=sys.stderr)
        return {"p50": percentile(sink, 50), "p99": percentile(sink, 99), "lost": lost}
    finally:
        spout.stop()
        sink.close()
        docker("rm", "-f", *names, check=False)


# ---------------------------------------------------------------- report


def fmt(v, unit="", digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v:,}{unit}"


def verdict(value, target, at_most=True):
    if value is None:
        return "n/a"
    ok = value <= target if at_most else value >= target
    return "met" if ok else "**missed**"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = proc_meminfo_gib()
    return (f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}, "
            f"Docker {docker('version', '--format', '{{.Server.Version}}')}")


def proc_meminfo_gib():
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) / (1 << 20)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spout", required=True, help="the spout binary (release build)")
    ap.add_argument("--quick", action="store_true", help="tiny workloads, one run each: checks the harness works")
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (the median is reported)")
    ap.add_argument("--only", default="", help="comma-separated workloads to run, e.g. W1,W5")
    ap.add_argument("--fluent-bit", metavar="BIN", help="a Fluent Bit binary, measured beside spout on the files "
                    "(W1, ROT, STEADY); built as ../shared/peers/fluent-bit.md says")
    ap.add_argument("--fluent-bit-parsers", metavar="FILE", help="its conf/parsers.conf (for the docker parser)")
    ap.add_argument("--steady-seconds", type=int, default=180, help="how long STEADY's containers write")
    args = ap.parse_args()
    if bool(args.fluent_bit) != bool(args.fluent_bit_parsers):
        ap.error("--fluent-bit and --fluent-bit-parsers go together")
    fb = (args.fluent_bit, args.fluent_bit_parsers) if args.fluent_bit else None
    q = args.quick
    runs = 1 if q else args.runs
    only = {w.strip().upper() for w in args.only.split(",") if w.strip()}

    def wanted(w):
        return not only or w in only

    sizes = {
        "w1": 20_000 if q else 1_000_000,
        "driver_gzip": 2_000 if q else 20_000,
        "driver_fast": 20_000 if q else 300_000,
        "w2": (5, 2_000) if q else (50, 20_000),
        "w3": 50 if q else 2_000,
        "w4": (10, 3) if q else (100, 30),
        "w5": 5 if q else 50,
        "rotation": 20_000 if q else 200_000,
        "w2_sources": (5, 2_000) if q else (20, 10_000),
        "steady": (5, 3) if q else (50, args.steady_seconds),
    }
    build_image()
    remove_bench_containers()
    others = docker("ps", "-q").split()
    if others:
        print(f"note: {len(others)} other containers are running; spout reads them too", file=sys.stderr)

    rows = []

    def row(workload, measure, value, target="", met=""):
        target, met = target or "", met or ""
        rows.append((workload, measure, value, target, met))
        print(f"  {workload} {measure}: {value} {met}", file=sys.stderr, flush=True)

    try:
        udp_gzip_rate = None
        if wanted("W1"):
            n = sizes["w1"]
            print(f"W1: one container, {n:,} lines of 100 bytes", file=sys.stderr, flush=True)
            cid = run_writer(f"{PREFIX}w1", n, 100)
            lines = n + 1
            ceil = [ceiling(cid, lines) for _ in range(runs)]
            ceil_time = median(c["time"] for c in ceil)
            row("W1", "ceiling: curl of the logs API, lines/s", fmt(median(c["rate"] for c in ceil), digits=0))
            row("W1", "ceiling: dockerd CPU s per 100k lines", fmt(median(c["dockerd_cpu"] for c in ceil)))
            by_source = {}
            for source, time_target, cpu_target, both_target in (("files", 0.25, None, 0.25), ("api", 1.05, 0.5, None)):
                rs = [spout_backlog(args.spout, "tcp", lines, source=source) for _ in range(runs)]
                by_source[source] = rs
                label = f"spout ({source}) → GELF TCP"
                ratio = median(r["time"] / ceil_time for r in rs)
                row("W1", f"{label}: time ÷ ceiling's time", fmt(ratio), f"≤ {time_target:.2f}",
                    verdict(ratio, time_target))
                row("W1", f"{label}: lines/s", fmt(median(r["rate"] for r in rs), digits=0))
                cpu = median(r["cpu"] for r in rs)
                row("W1", f"{label}: spout CPU s per 100k lines", fmt(cpu), cpu_target and f"≤ {cpu_target:.2f}",
                    cpu_target and verdict(cpu, cpu_target))
                row("W1", f"{label}: dockerd CPU s per 100k lines", fmt(median(r["dockerd_cpu"] for r in rs)))
                both = median(r.get("both_cpu") for r in rs)
                row("W1", f"{label}: spout + dockerd CPU s per 100k lines", fmt(both),
                    both_target and f"≤ {both_target:.2f}", both_target and verdict(both, both_target))
                rss = max(r["rss"] for r in rs)
                row("W1", f"{label}: spout peak RSS (max of runs)", fmt(rss, " MiB", 1), "≤ 30 MiB", verdict(rss, 30))
                lost = max(r["lost"] for r in rs)
                row("W1", f"{label}: lines lost", fmt(lost), "0", verdict(lost, 0))
            if fb:
                # Its messages are counted by their short_message: the END line too.
                rs = [fluent_bit_backlog(fb, cid, lines) for _ in range(runs)]
                rate = median(r["rate"] for r in rs)
                cpu = median(r["cpu"] for r in rs)
                row("W1", "Fluent Bit (tail) → GELF TCP: time ÷ ceiling's time", fmt(median(r["time"] / ceil_time for r in rs)))
                row("W1", "Fluent Bit (tail) → GELF TCP: lines/s", fmt(rate, digits=0))
                row("W1", "Fluent Bit (tail) → GELF TCP: CPU s per 100k lines", fmt(cpu))
                row("W1", "Fluent Bit (tail) → GELF TCP: peak RSS (max of runs)", fmt(max(r["rss"] for r in rs), " MiB", 1))
                row("W1", "Fluent Bit (tail) → GELF TCP: lines lost", fmt(max(r["lost"] for r in rs)))
                files = by_source["files"]
                x = median(r["rate"] for r in files) / rate if rate else None
                row("W1", "spout (files) lines/s ÷ Fluent Bit's", fmt(x, "x", 1), "≥ 3x", verdict(x, 3, at_most=False))
                y = median(r["cpu"] for r in files) / cpu if cpu else None
                row("W1", "spout (files) CPU per line ÷ Fluent Bit's", fmt(y), "≤ 0.50", verdict(y, 0.5))
            udp = [spout_backlog(args.spout, "udp", lines, "?compress=gzip") for _ in range(runs)]
            udp_gzip_rate = median(r["rate"] for r in udp)
            row("W1", "spout → GELF UDP gzip: time ÷ ceiling's time", fmt(median(r["time"] / ceil_time for r in udp)))
            row("W1", "spout → GELF UDP gzip: lines/s", fmt(udp_gzip_rate, digits=0))
            row("W1", "spout → GELF UDP gzip: spout CPU s per 100k lines", fmt(median(r["cpu"] for r in udp)))
            row("W1", "spout → GELF UDP gzip: spout peak RSS (max of runs)", fmt(max(r["rss"] for r in udp), " MiB", 1))
            row("W1", "spout → GELF UDP gzip: lines lost at the receiver", fmt(max(r["lost"] for r in udp)))
            docker("rm", "-f", cid)

        if wanted("ROT"):
            n = sizes["rotation"]
            print(f"ROT: {n:,} lines as fast as one container writes them, max-size=1m, max-file=3",
                  file=sys.stderr, flush=True)
            agents = [("spout (files)", lambda port: Spout(args.spout, [f"gelf+tcp://127.0.0.1:{port}"], source="files")),
                      ("spout (api)", lambda port: Spout(args.spout, [f"gelf+tcp://127.0.0.1:{port}"], source="api"))]
            if fb:
                agents.append(("Fluent Bit (tail)", lambda port: FluentBit(*fb, port)))
            for label, start in agents:
                rs = [rotation(start, n) for _ in range(runs)]
                zero = label == "spout (files)"
                row("ROT", f"{label}: the writer's speed, MB/s (min of runs)", fmt(min(r["mb_s"] for r in rs), digits=1),
                    "≥ 10" if zero else "", verdict(min(r["mb_s"] for r in rs), 10, at_most=False) if zero else "")
                for key, what in (("lost", "lines lost"), ("repeated", "lines repeated")):
                    worst = max(r[key] for r in rs)
                    row("ROT", f"{label}: {what} (min–max of runs)", span(rs, key), "0" if zero else "",
                        verdict(worst, 0) if zero else "")
                row("ROT", f"{label}: runs whose losses were warned about", f"{sum(r['warned'] > 0 for r in rs)} of "
                    f"{sum(r['lost'] > 0 for r in rs)} with losses")

        if wanted("DRIVER"):
            print("Docker's gelf log driver", file=sys.stderr, flush=True)
            gz = [driver("udp", "gzip", sizes["driver_gzip"]) for _ in range(runs)]
            gz_rate = median(r["rate"] for r in gz)
            row("driver", "Docker gelf driver, UDP gzip (its default): lines/s", fmt(gz_rate, digits=0))
            for kind, comp in (("udp", "none"), ("tcp", "none")):
                rs = [driver(kind, comp, sizes["driver_fast"]) for _ in range(runs)]
                label = "UDP uncompressed" if kind == "udp" else "TCP"
                row("driver", f"Docker gelf driver, {label}: lines/s", fmt(median(r["rate"] for r in rs), digits=0))
            if udp_gzip_rate and gz_rate:
                x = udp_gzip_rate / gz_rate
                row("W1", "spout UDP gzip lines/s ÷ driver's UDP gzip lines/s", fmt(x, "x", 0), "≥ 50x",
                    verdict(x, 50, at_most=False))

        if wanted("W2"):
            c, each = sizes["w2"]
            print(f"W2: {c} containers x {each:,} lines started together", file=sys.stderr, flush=True)
            rs = [w2_burst(args.spout, c, each) for _ in range(runs)]
            row("W2", "time to the last line ÷ time for the containers to finish writing",
                fmt(median(r["ratio"] for r in rs)))
            lost = max(r["lost"] for r in rs)
            row("W2", "lines lost over GELF TCP (max of runs)", fmt(lost), "0", verdict(lost, 0))
            row("W2", "spout CPU s per 100k lines", fmt(median(r["cpu"] for r in rs)))
            rss = max(r["rss"] for r in rs)
            row("W2", "spout peak RSS (max of runs)", fmt(rss, " MiB", 1), "≤ 40 MiB", verdict(rss, 40))
            c, each = sizes["w2_sources"]
            print(f"W2: {c} containers x {each:,} lines started together, dockerd's CPU with each source",
                  file=sys.stderr, flush=True)
            for label, source, agent in (("no agent", "auto", False), ("spout (files)", "files", True),
                                         ("spout (api)", "api", True)):
                rs = [w2_burst(args.spout, c, each, source=source, agent=agent) for _ in range(runs)]
                row("W2", f"{c} x {each:,}, {label}: dockerd CPU s per 100k lines",
                    fmt(median(r["dockerd_cpu"] for r in rs)))
                if agent:
                    row("W2", f"{c} x {each:,}, {label}: spout CPU s per 100k lines", fmt(median(r["cpu"] for r in rs)))
                    lost = max(r["lost"] for r in rs)
                    row("W2", f"{c} x {each:,}, {label}: lines lost (max of runs)", fmt(lost), "0", verdict(lost, 0))

        if wanted("W3"):
            n = sizes["w3"]
            print(f"W3: one container, {n:,} lines of 64 KiB", file=sys.stderr, flush=True)
            cid = run_writer(f"{PREFIX}w3", n, 65536)
            ceil = [ceiling(cid, n + 1) for _ in range(runs)]
            ceil_time = median(c["time"] for c in ceil)
            row("W3", "ceiling: curl of the logs API, lines/s", fmt(median(c["rate"] for c in ceil), digits=0))
            rs = [spout_backlog(args.spout, "tcp", n + 1) for _ in range(runs)]
            row("W3", "spout → GELF TCP: time ÷ ceiling's time", fmt(median(r["time"] / ceil_time for r in rs)))
            row("W3", "spout → GELF TCP: spout CPU s per 100k lines", fmt(median(r["cpu"] for r in rs)))
            row("W3", "spout → GELF TCP: spout peak RSS (max of runs)", fmt(max(r["rss"] for r in rs), " MiB", 1))
            row("W3", "spout → GELF TCP: lines lost", fmt(max(r["lost"] for r in rs)), "0",
                verdict(max(r["lost"] for r in rs), 0))
            docker("rm", "-f", cid)

        if wanted("W4"):
            c, secs = sizes["w4"]
            print(f"W4: {c} idle containers for {secs} s", file=sys.stderr, flush=True)
            r = w4_idle(args.spout, c, secs)
            row("W4", f"spout RSS with {c} containers attached", fmt(r["rss"], " MiB", 1), "≤ 20 MiB",
                verdict(r["rss"], 20))
            row("W4", "spout CPU while idle, s per s (median of 3 slices)", fmt(r["cpu_per_s"], digits=4), "< 0.01",
                verdict(r["cpu_per_s"], 0.01))

        if wanted("W5"):
            c = sizes["w5"]
            print(f"W5: attach latency over {c} containers", file=sys.stderr, flush=True)
            for exits, label in ((False, "that keep running"), (True, "that exit at once")):
                r = w5_attach(args.spout, c, exits)
                p50, p99 = (r[k] and r[k] * 1000 for k in ("p50", "p99"))
                row("W5", f"first line to the receiver, containers {label}: p50", fmt(p50, " ms", 0))
                row("W5", f"first line to the receiver, containers {label}: p99", fmt(p99, " ms", 0), "< 200 ms",
                    verdict(p99, 200))
                row("W5", f"first lines lost, containers {label}", fmt(r["lost"]), "0", verdict(r["lost"], 0))

        if wanted("STEADY"):
            c, secs = sizes["steady"]
            print(f"STEADY: {c} containers writing a line every 10 ms for {secs} s", file=sys.stderr, flush=True)
            agents = [("no agent", None, PATTERN),
                      ("spout (files)", lambda port: Spout(args.spout, [f"gelf+tcp://127.0.0.1:{port}"], source="files"),
                       PATTERN),
                      ("spout (api)", lambda port: Spout(args.spout, [f"gelf+tcp://127.0.0.1:{port}"], source="api"),
                       PATTERN)]
            if fb:
                agents.append(("Fluent Bit (tail)", lambda port: FluentBit(*fb, port), b'"short_message":"'))
            for label, start, pattern in agents:
                r = steady(start, c, secs, pattern)
                row("STEADY", f"{label}: dockerd CPU s per 100k lines", fmt(r["dockerd_cpu"]))
                if start is None:
                    continue
                files = label == "spout (files)"
                row("STEADY", f"{label}: agent CPU s per 100k lines", fmt(r["cpu"]), "≤ 0.50" if files else "",
                    verdict(r["cpu"], 0.5) if files else "")
                lo, hi = r["rss_range"] or (None, None)
                row("STEADY", f"{label}: agent RSS, lowest and highest after the first fifth",
                    f"{fmt(lo, digits=1)}–{fmt(hi, ' MiB', 1)}")
                row("STEADY", f"{label}: line to the receiver, p50", fmt(r["p50"] and r["p50"] * 1000, " ms", 1))
                row("STEADY", f"{label}: line to the receiver, p99", fmt(r["p99"] and r["p99"] * 1000, " ms", 1))
                row("STEADY", f"{label}: lines lost of {r['lines']:,}", fmt(r["lost"]), "0" if files else "",
                    verdict(r["lost"], 0) if files else "")

    finally:
        remove_bench_containers()

    print(f"\nspout benchmark: {machine()}; {runs} run(s) per figure, medians{' (--quick)' if q else ''}\n")
    print("| Workload | Measure | Result | Target | |")
    print("|---|---|---:|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
