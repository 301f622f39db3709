"""The servers of the end-to-end benchmark, built on the e2e harness (tests/e2e/ferrytest.py:
Prosody, Ngircd, Ferry, Process, cleanup): what the benchmark adds is a quiet Prosody with
plain-text accounts written straight to its data directory and a second component for
biboumi, a biboumi fixture, and readings of a process's memory and CPU time from /proc."""

import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'e2e'))

import ferrytest  # noqa: E402
from ferrytest import Process, private_dir  # noqa: E402

BIBOUMI = os.environ.get('FERRY_BENCH_BIBOUMI', 'biboumi')
BIBOUMI_DOMAIN = 'biboumi.localhost'
USER_PASSWORD = 'bench-pw'

# Appended to the harness's Prosody config. The harness logs at debug level, which would make
# Prosody's log the bottleneck of every figure: warnings only. internal_plain: a login costs
# no PBKDF2 and a thousand accounts are written as files in a blink instead of a thousand
# prosodyctl runs. The biboumi component comes last: the harness's VirtualHost line follows.
PROSODY_EXTRA = '''
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = "{dir}/prosody.log" }} }}
authentication = "internal_plain"
c2s_stanza_size_limit = 1048576

Component "{biboumi}"
    component_secret = "{secret}"
'''


def make_prosody(users):
    """A started Prosody with the given local parts registered (password USER_PASSWORD)."""
    secret = 'bench-' + os.urandom(8).hex()
    # The harness picks the directory: format the extra with a placeholder and fix it after.
    p = ferrytest.Prosody(secret=secret, extra='@EXTRA@')
    with open(p.config) as f:
        text = f.read()
    text = text.replace('@EXTRA@', PROSODY_EXTRA.format(dir=p.dir, biboumi=BIBOUMI_DOMAIN,
                                                        secret=secret))
    with open(p.config, 'w') as f:
        f.write(text)
    accounts = os.path.join(p.dir, 'data', 'localhost', 'accounts')
    os.makedirs(accounts, mode=0o700)
    for user in users:
        with open(os.path.join(accounts, user + '.dat'), 'w') as f:
            f.write('return {\n\t["password"] = "%s";\n};\n' % USER_PASSWORD)
    p.start()
    return p


BIBOUMI_CONFIG = '''hostname={domain}
password={secret}
xmpp_server_ip=127.0.0.1
port={port}
db_name={dir}/biboumi.sqlite
identd_port=0
policy_directory={dir}
log_level=2
log_file={dir}/biboumi.log
realname_customization=true
'''


class Biboumi:
    """biboumi in the foreground with a private config, attached to prosody's component
    port as BIBOUMI_DOMAIN. Its database (users' per-server settings) survives restarts."""

    def __init__(self, prosody):
        self.dir = private_dir('biboumi')
        self.domain = BIBOUMI_DOMAIN
        self.config = os.path.join(self.dir, 'biboumi.cfg')
        self.output = os.path.join(self.dir, 'biboumi.out')
        self.log = os.path.join(self.dir, 'biboumi.log')
        with open(self.config, 'w') as f:
            f.write(BIBOUMI_CONFIG.format(domain=BIBOUMI_DOMAIN, secret=prosody.secret,
                                          port=prosody.component_port, dir=self.dir))
        self.proc = None
        ferrytest.register_cleanup(self.close)

    def start(self):
        self.proc = Process('biboumi', [BIBOUMI, self.config], self.output, cwd=self.dir)
        return self

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def log_tail(self):
        return '--- %s\n%s\n--- %s\n%s' % (self.log, ferrytest.tail(self.log, 30), self.output,
                                           ferrytest.tail(self.output, 10))

    def stop(self):
        return self.proc.stop() if self.proc else None

    def close(self):
        if self.proc:
            self.proc.stop()


# ---------------------------------------------------------------- /proc readings

CLK_TCK = os.sysconf('SC_CLK_TCK')
PAGE_KB = os.sysconf('SC_PAGE_SIZE') // 1024


def rss_kb(pid):
    """Resident set size of pid in kB (VmRSS), or None when the process is gone."""
    try:
        with open('/proc/%d/statm' % pid) as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(pid):
    """utime + stime of pid (all its threads) in seconds, or None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def rss_breakdown(pid, top=8):
    """Where a process's resident memory sits, from /proc/PID/smaps: a list of (what, count of
    mappings, RSS kB), biggest first. Anonymous mappings are told apart by size class, which
    separates thread stacks (all the same size) from heaps and arenas."""
    groups = {}
    name = None
    try:
        with open('/proc/%d/smaps' % pid) as f:
            for line in f:
                first = line.split(None, 1)[0]
                if '-' in first and not first.endswith(':'):
                    parts = line.split()
                    lo, hi = (int(x, 16) for x in parts[0].split('-'))
                    path = parts[5] if len(parts) > 5 else ''
                    if not path:
                        path = '[anon %d kB]' % ((hi - lo) // 1024)
                    name = path
                elif first == 'Rss:' and name is not None:
                    count, kb = groups.get(name, (0, 0))
                    groups[name] = (count + 1, kb + int(line.split()[1]))
    except OSError:
        return []
    rows = sorted(((n, c, kb) for n, (c, kb) in groups.items()), key=lambda r: -r[2])
    return rows[:top]


def thread_cpu(pid):
    """{tid: (thread name, utime + stime in seconds)} for every thread of pid."""
    out = {}
    try:
        tids = os.listdir('/proc/%d/task' % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.find('(') + 1:text.rfind(')')]
        fields = text.rsplit(')', 1)[1].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def busiest_threads(before, after, seconds, top=3):
    """[(name, % of a core)] of the threads that used the most CPU between two thread_cpu()
    readings, busiest first."""
    used = []
    for tid, (name, cpu) in after.items():
        used.append((name, (cpu - before.get(tid, (name, 0.0))[1]) / max(seconds, 1e-9) * 100))
    return sorted(used, key=lambda u: -u[1])[:top]


def listen_overflows():
    """The kernel's count of connections dropped because a listen queue was full
    (TcpExt ListenOverflows in /proc/net/netstat), or None."""
    try:
        with open('/proc/net/netstat') as f:
            lines = [line.split() for line in f if line.startswith('TcpExt:')]
        return int(dict(zip(lines[0], lines[1]))['ListenOverflows'])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def threads(pid):
    try:
        return len(os.listdir('/proc/%d/task' % pid))
    except OSError:
        return None


def machine():
    """A one-line description of the machine: CPU model, cores, memory, kernel."""
    model = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem = '?'
    try:
        with open('/proc/meminfo') as f:
            kb = int(f.readline().split()[1])
            mem = '%.1f GiB' % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    return '%s, %d cores (nproc), %s RAM, Linux %s, host %s' % (
        model, os.cpu_count() or 0, mem, os.uname().release, socket.gethostname())
