#!/usr/bin/python3
"""Soak test (issue 7): many owners talk with IRC peers through Ferry for a long time.

    /usr/bin/python3 bench/soak.py [--ferry build/ferry] [--seconds 600] [--users 100]

One private Prosody and one private ngircd (MaxPenaltyTime = 0) on loopback, Ferry attached as
a component, the same lightweight clients as the benchmark (bench/rawxmpp.py, bench/rawirc.py,
set up through bench/e2e.py's helpers). Each owner registers, comes online, and then sends one
message to its IRC peer every --interval seconds while that peer sends one back, staggered so
the load is even, for --seconds. Then it waits for the stragglers (--drain) and counts:

  XMPP to IRC: every message sent is delivered to the peer or answered with an error stanza
               (matched by the message id), none is lost;
  IRC to XMPP: every message sent reaches the owner (Ferry has no error channel back to IRC:
               one it refuses is logged, and the lines of its log saying so are counted).

Ferry's RSS is sampled every 10 s and printed; the growth after the warm-up (the first
--warmup seconds of traffic) is stated in kB and kB/min. Exit status 1 when a message was lost,
duplicated, or Ferry exited; the memory figures are printed, never judged.

--mem tells live heap growth from fragmentation: each sample also splits the RSS by mapping
(/proc/PID/smaps: main heap, thread arenas, thread stacks, other anonymous, files) and reads
glibc's mallinfo2() (bytes in use, free in the arenas) through a small preloaded probe;
--trim-at T has the probe call malloc_trim(0) at second T, to see what trimming gives back.
--wrapper runs Ferry under a tool, e.g. --wrapper "valgrind --tool=massif --time-unit=ms".
Environment: SOAK_SECONDS, SOAK_USERS, SOAK_MEM (defaults for --seconds, --users, --mem).
"""

import argparse
import asyncio
import itertools
import os
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import e2e  # noqa: E402  (the benchmark's servers, logins and set-up helpers)
import rig  # noqa: E402
import rawxmpp  # noqa: E402
from ferrytest import install_signal_cleanup, cleanup_all  # noqa: E402
from gateways import FerryGateway, GatewayError, body_of  # noqa: E402

T0 = time.monotonic()


def log(msg):
    print('[soak %7.1f] %s' % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


ARENA_ALIGN = 64 << 20  # glibc's HEAP_MAX_SIZE: a thread arena's heap starts on this boundary
MALLINFO = re.compile(r'(\w+)=(\d+)')


def ferry_pid(pid, binary):
    """pid itself, or under a wrapper (heaptrack is a script) its descendant running binary."""
    todo = [pid] if pid else []
    while todo:
        p = todo.pop(0)
        try:
            if os.path.realpath('/proc/%d/exe' % p) == os.path.realpath(binary):
                return p
            for task in os.listdir('/proc/%d/task' % p):
                with open('/proc/%d/task/%s/children' % (p, task)) as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return pid


def smaps_kb(pid):
    """Rss (kB) by kind of mapping: heap (main arena, brk), arenas (thread arenas: anonymous
    heaps on a 64 MiB boundary), stacks (anonymous mappings right after a guard page), anon
    (other anonymous mappings: large mmap'd blocks, GLib, SQLite), files (libraries, data)."""
    out = dict.fromkeys(('heap', 'arenas', 'stacks', 'anon', 'files'), 0)
    kind, guard_end = None, None
    try:
        with open('/proc/%d/smaps' % pid) as f:
            for line in f:
                head = line.split()
                if '-' in head[0] and len(head) >= 5 and not head[0].endswith(':'):
                    lo, hi = (int(x, 16) for x in head[0].split('-'))
                    path = head[5] if len(head) > 5 else ''
                    if path == '[heap]':
                        kind = 'heap'
                    elif path:
                        kind = 'files'
                    elif head[1].startswith('---'):
                        kind, guard_end = None, hi
                        continue
                    elif lo % ARENA_ALIGN == 0:
                        kind = 'arenas'
                    elif lo == guard_end:
                        kind = 'stacks'
                    else:
                        kind = 'anon'
                    guard_end = None
                elif head[0] == 'Rss:' and kind:
                    out[kind] += int(head[1])
    except OSError:
        return None
    return out


# With --mem, Ferry runs with this preloaded: a thread that appends glibc's mallinfo2() (summed
# over all arenas) to $SOAK_PROBE_OUT every second, and calls malloc_trim(0) when the file
# $SOAK_PROBE_OUT.trim appears. gdb cannot do it: an inferior call while the main thread sits in
# poll() makes poll() fail with errno 516 (ERESTART_RESTARTBLOCK) and Ferry exits.
PROBE_C = r'''
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* open() and dprintf(): no malloc in this thread, so that it takes no arena of its own. */
static void put(int f, const char *what)
{
    struct mallinfo2 m = mallinfo2();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    dprintf(f, "%s %ld arena=%zu hblkhd=%zu uordblks=%zu fordblks=%zu keepcost=%zu\n", what,
            (long)ts.tv_sec, m.arena, m.hblkhd, m.uordblks, m.fordblks, m.keepcost);
}
static void *probe(void *arg)
{
    const char *out = arg;
    char trim[4096];
    snprintf(trim, sizeof trim, "%s.trim", out);
    int f = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0)
        return NULL;
    for (;;) {
        put(f, "m");
        if (access(trim, F_OK) == 0) {
            unlink(trim);
            int r = malloc_trim(0);
            dprintf(f, "trimmed %d\n", r);
            put(f, "t");
        }
        sleep(1);
    }
}
__attribute__((constructor)) static void start(void)
{
    const char *out = getenv("SOAK_PROBE_OUT");
    sigset_t all, old;
    pthread_t t;
    if (!out)
        return;
    /* Ferry takes its signals through a signalfd: this thread must never receive one. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_create(&t, NULL, probe, (void *)out);
    pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
'''


def build_probe(directory):
    """Compiles PROBE_C into directory; returns the .so path."""
    src, so = os.path.join(directory, 'probe.c'), os.path.join(directory, 'probe.so')
    with open(src, 'w') as f:
        f.write(PROBE_C)
    subprocess.run(['cc', '-O1', '-shared', '-fPIC', '-pthread', '-o', so, src], check=True)
    return so


def mallinfo(path):
    """The probe's last mallinfo2 line as a dict (bytes), None before the first."""
    last = None
    try:
        with open(path) as f:
            for line in f:
                if line.startswith('m ') or line.startswith('t '):
                    last = line
    except OSError:
        return None
    return {k: int(v) for k, v in MALLINFO.findall(last)} if last else None


def threads(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            return int(re.search(r'^Threads:\s+(\d+)', f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return None


class Counts:
    """One direction's messages: sent, delivered, answered with an error, duplicates."""

    def __init__(self):
        self.pending = {}  # token -> send time
        self.sent = self.delivered = self.errors = self.duplicates = 0
        self.first_error = None

    def send(self, token):
        self.pending[token] = time.monotonic()
        self.sent += 1

    def settle(self, token, error=None):
        if token not in self.pending:
            if token is not None:
                self.duplicates += 1
            return
        del self.pending[token]
        if error is None:
            self.delivered += 1
        else:
            self.errors += 1
            self.first_error = self.first_error or error


TOKEN = re.compile(r'^(s\d+)\b')


def token_of(text):
    m = TOKEN.match(text or '')
    return m.group(1) if m else None


class Soak:
    def __init__(self, opts):
        self.opts = opts
        self.x2i, self.i2x = Counts(), Counts()
        self.seq = itertools.count(1)
        self.bench = e2e.Bench()  # holds the connections, for the helpers and the teardown
        self.samples = []  # (seconds since traffic started, RSS kB)
        self.mem = []  # with --mem: (t, RSS kB, smaps_kb, mallinfo or None)
        self.pid = None
        self.probe_out = opts.probe_out
        self.trimmed = False

    # -- message callbacks
    def on_xmpp(self, conn, el, t):
        if el.get('type') == 'error':
            self.x2i.settle(el.get('id'), '%s from %s' % (rawxmpp.error_condition(el),
                                                          el.get('from')))
            return
        tok = token_of(body_of(el))
        if tok:
            self.i2x.settle(tok)

    def on_irc(self, conn, src, text, t):
        tok = token_of(text.decode('utf-8', 'replace') if isinstance(text, bytes) else text)
        if tok:
            self.x2i.settle(tok)

    def token(self):
        return 's%d' % next(self.seq)

    # -- set-up
    async def setup(self):
        opts, bench = self.opts, self.bench
        users = ['u%04d' % i for i in range(opts.users)]
        self.prosody, self.ngircd = e2e.start_servers(users + ['probe'])
        bench.obs = await e2e.irc_login(bench, self.ngircd, 'observer')
        npeers = max(1, min(opts.peers, opts.users))
        res = await e2e.limited([e2e.irc_login(bench, self.ngircd, 'p%03d' % j)
                                 for j in range(npeers)], 20)
        e2e.raise_first(res, 'IRC peer logins')
        bench.peers = res
        for p in bench.peers:
            p.on_privmsg = self.on_irc
        probe = await e2e.xmpp_login(bench, self.prosody, 'probe')
        bench.xmpp['probe'] = probe
        base = await bench.obs.users()
        self.gw = FerryGateway(opts.ferry, self.prosody, self.ngircd, opts.login_rate)
        await self.gw.start(probe)
        res = await e2e.limited([e2e.xmpp_login(bench, self.prosody, u) for u in users], 50, 300,
                                'XMPP logins')
        for i, c in enumerate(res):
            if not isinstance(c, BaseException):
                bench.xmpp[i] = c
                c.on_message = self.on_xmpp
        e2e.raise_first(res, 'XMPP logins')
        res = await e2e.limited([self.gw.prepare(bench.xmpp[i], self.nick(i))
                                 for i in range(opts.users)], 50, 300, 'registrations')
        e2e.raise_first(res, 'registrations')
        for i in range(opts.users):
            self.gw.online(bench.xmpp[i], self.nick(i))
        deadline = time.monotonic() + 120
        while await bench.obs.users() - base < opts.users:
            if time.monotonic() > deadline or not self.gw.alive():
                raise GatewayError('%d of %d owners on IRC' % (
                    await bench.obs.users() - base, opts.users))
            await asyncio.sleep(0.2)
        self.pid = ferry_pid(self.gw.pid, opts.ferry)
        log('%d owners on IRC, %d peers; Ferry RSS %s kB' % (
            opts.users, npeers, rig.rss_kb(self.pid)))

    def nick(self, i):
        return 'f%04d' % i

    def peer_of(self, i):
        return self.bench.peers[i % len(self.bench.peers)]

    # -- traffic
    def send_pair(self, i):
        conn, peer = self.bench.xmpp[i], self.peer_of(i)
        tok = self.token()
        self.x2i.send(tok)
        conn.send("<message to='%s' id='%s' type='chat'><body>%s%s</body></message>" % (
            rawxmpp.esc(self.gw.contact(peer.nick)), tok, tok, e2e.PAD))
        tok = self.token()
        self.i2x.send(tok)
        peer.privmsg(self.nick(i), tok + e2e.PAD)

    async def traffic(self):
        opts = self.opts
        start = time.monotonic()
        next_sample = start
        n = opts.users
        k = 0  # sends done so far: owner k % n, due at start + k * interval / n
        while True:
            now = time.monotonic()
            if now >= next_sample:
                self.sample(now - start)
                next_sample += 10
            if now - start >= opts.seconds:
                break
            if not self.gw.alive():
                raise GatewayError('Ferry exited during the soak')
            while start + k * opts.interval / n <= now:
                self.send_pair(k % n)
                k += 1
            await asyncio.sleep(0.02)
        if time.monotonic() - start - self.samples[-1][0] >= 1:
            self.sample(time.monotonic() - start)
        log('traffic over: %d messages each way sent; draining up to %d s' % (
            self.x2i.sent, opts.drain))
        deadline = time.monotonic() + opts.drain
        while (self.x2i.pending or self.i2x.pending) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    def sample(self, t):
        rss = rig.rss_kb(self.pid)
        self.samples.append((t, rss))
        log('t=%4.0f s  RSS %s kB  x2i %d/%d  i2x %d/%d (delivered/sent)' % (
            t, rss, self.x2i.delivered, self.x2i.sent, self.i2x.delivered, self.i2x.sent))
        if self.opts.mem:
            self.sample_mem(t, rss)

    def sample_mem(self, t, rss):
        maps = smaps_kb(self.pid)
        mi = mallinfo(self.probe_out)
        if self.opts.trim_at and t >= self.opts.trim_at and not self.trimmed:
            # Ask the probe for malloc_trim(0); the next samples show what it gave back.
            open(self.probe_out + '.trim', 'w').close()
            self.trimmed = True
            log('         asked for malloc_trim(0)')
        self.mem.append((t, rss, maps, mi))
        text = ' '.join('%s %d' % kv for kv in maps.items()) if maps else 'gone'
        if mi:
            text += ' | malloc: in use %d kB (mmap %d), free in arenas %d kB, arena %d kB' % (
                (mi['uordblks'] + mi['hblkhd']) >> 10, mi['hblkhd'] >> 10,
                mi['fordblks'] >> 10, mi['arena'] >> 10)
        log('         mem (kB): %s; %s threads' % (text, threads(self.pid)))

    # -- the verdict
    def segments(self):
        """Growth rate in each quarter (at least 60 s) after the warm-up: growth that levels
        off (a cache filling) shows falling rates, a leak a steady one."""
        pts = [(t, kb) for t, kb in self.samples if t >= self.opts.warmup and kb is not None]
        step = max(60, (pts[-1][0] - pts[0][0]) / 4)
        out, start = [], pts[0]
        for p in pts[1:]:
            if p[0] - start[0] >= step - 1 or p is pts[-1]:
                out.append('%d-%d s %+.0f' % (start[0], p[0], (p[1] - start[1]) * 60 /
                                               max(p[0] - start[0], 1)))
                start = p
        return ', '.join(out)

    def report_mem(self):
        """With --mem: where the RSS is, and malloc's bytes in use, at each mallinfo sample,
        then the change after the warm-up per kind (what grew: live blocks or free space)."""
        rows = [(t, rss, m, mi) for t, rss, m, mi in self.mem if m and mi]
        if not rows:
            return
        print('  %6s %8s %8s %8s %8s %8s %8s | %9s %9s %8s' % (
            't (s)', 'RSS', 'heap', 'arenas', 'stacks', 'anon', 'files', 'in use', 'free', 'mmap'))
        for t, rss, m, mi in rows:
            print('  %6.0f %8d %8d %8d %8d %8d %8d | %9d %9d %8d' % (
                t, rss, m['heap'], m['arenas'], m['stacks'], m['anon'], m['files'],
                (mi['uordblks'] + mi['hblkhd']) >> 10, mi['fordblks'] >> 10, mi['hblkhd'] >> 10))
        warm = [r for r in rows if r[0] >= self.opts.warmup]
        if len(warm) >= 2:
            (t0, r0, m0, i0), (t1, r1, m1, i1) = warm[0], warm[-1]
            per = 60.0 / (t1 - t0) if t1 > t0 else 0
            grow = {k: (m1[k] - m0[k]) * per for k in m0}
            used = ((i1['uordblks'] + i1['hblkhd']) - (i0['uordblks'] + i0['hblkhd'])) / 1024
            free = (i1['fordblks'] - i0['fordblks']) / 1024
            print('  after warm-up, kB/min: RSS %+.1f = %s; malloc in use %+.1f, free %+.1f' % (
                (r1 - r0) * per, ' '.join('%s %+.1f' % kv for kv in grow.items()),
                used * per, free * per))

    def refused_lines(self):
        try:
            text = self.gw._ferry.log_text()
        except Exception:
            return 0
        return sum(1 for line in text.splitlines() if re.search(r'refus|dropp', line, re.I))

    def report(self):
        opts, ok = self.opts, True
        print('soak: %d owners, %d IRC peers, %d s of traffic, one message each way per owner '
              'every %g s' % (opts.users, len(self.bench.peers), opts.seconds, opts.interval))
        for name, c in (('XMPP to IRC', self.x2i), ('IRC to XMPP', self.i2x)):
            lost = len(c.pending)
            print('  %s: %d sent, %d delivered, %d answered with an error, %d lost, '
                  '%d duplicated%s' % (name, c.sent, c.delivered, c.errors, lost, c.duplicates,
                                       ' (first error: %s)' % c.first_error
                                       if c.first_error else ''))
            ok = ok and lost == 0 and c.duplicates == 0 and c.sent > 0
        print('  Ferry log lines about refused or dropped stanzas: %d' % self.refused_lines())
        print('  RSS (kB) every 10 s: %s' % ' '.join(str(kb) for _, kb in self.samples))
        self.report_mem()
        warm = [kb for t, kb in self.samples if t >= opts.warmup and kb is not None]
        if len(warm) >= 2:
            span = self.samples[-1][0] - max(opts.warmup, self.samples[0][0])
            growth = warm[-1] - warm[0]
            print('  growth after %d s of warm-up: %+d kB (%+.1f kB/min), min %d max %d kB'
                  % (opts.warmup, growth, growth / span * 60 if span > 0 else 0, min(warm),
                     max(warm)))
            print('  growth by segment (kB/min): %s' % self.segments())
        else:
            print('  growth after warm-up: n/a (run longer than the %d s warm-up)' % opts.warmup)
        alive = self.gw.alive()
        print('  Ferry %s' % ('still running' if alive else 'EXITED'))
        ok = ok and alive
        print('soak: %s' % ('PASS' if ok else 'FAIL'))
        return ok

    async def teardown(self):
        for c in list(self.bench.xmpp.values()) + self.bench.peers + [self.bench.obs]:
            if c is not None:
                c.close()
        await asyncio.sleep(0.2)
        for what in ('gw', 'ngircd', 'prosody'):
            obj = getattr(self, what, None)
            if obj is None:
                continue
            try:
                await (obj.stop() if what == 'gw' else asyncio.to_thread(obj.close))
            except Exception as e:
                log('teardown: %s' % e)


async def run(opts):
    soak = Soak(opts)
    try:
        await soak.setup()
        await soak.traffic()
        return soak.report()
    except (GatewayError, e2e.ServerError, rawxmpp.XmppError, asyncio.TimeoutError,
            OSError) as e:
        log('soak failed: %s' % e)
        if getattr(soak, 'gw', None) is not None:
            log(soak.gw.log_tail())
        if soak.samples:
            soak.report()
        return False
    finally:
        await soak.teardown()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--ferry', default=os.path.join(rig.REPO, 'build', 'ferry'))
    ap.add_argument('--seconds', type=int, default=int(os.environ.get('SOAK_SECONDS', '600')))
    ap.add_argument('--users', type=int, default=int(os.environ.get('SOAK_USERS', '100')))
    ap.add_argument('--peers', type=int, default=20, help='scripted IRC peers')
    ap.add_argument('--interval', type=float, default=5.0,
                    help='seconds between two messages of one owner (each way)')
    ap.add_argument('--warmup', type=int, default=60, help='seconds of traffic before growth')
    ap.add_argument('--drain', type=int, default=30, help='seconds to wait for stragglers')
    ap.add_argument('--login-rate', type=float, default=50.0)
    ap.add_argument('--mem', action='store_true', default=bool(os.environ.get('SOAK_MEM')),
                    help='also break the RSS down by mapping (smaps) and read mallinfo2 by gdb')
    ap.add_argument('--trim-at', type=int, default=0,
                    help='with --mem: call malloc_trim(0) in Ferry at this second of traffic')
    ap.add_argument('--wrapper', default=None,
                    help='command line Ferry runs under, e.g. "valgrind --tool=massif" '
                         '(sets FERRY_E2E_WRAPPER)')
    opts = ap.parse_args(argv)
    opts.ferry = os.path.abspath(opts.ferry)
    if opts.wrapper is not None:
        os.environ['FERRY_E2E_WRAPPER'] = opts.wrapper
    opts.probe_out = None
    if opts.mem:
        d = rig.private_dir('soak-probe')
        opts.probe_out = os.path.join(d, 'mallinfo.txt')
        os.environ['SOAK_PROBE_OUT'] = opts.probe_out
        # Preloaded through env so that a wrapper (valgrind) is not itself preloaded.
        os.environ['FERRY_E2E_WRAPPER'] = ' '.join(
            ['env', 'LD_PRELOAD=' + build_probe(d)] + shlex.split(
                os.environ.get('FERRY_E2E_WRAPPER', '')))
    install_signal_cleanup()
    try:
        return 0 if asyncio.run(run(opts)) else 1
    finally:
        cleanup_all()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
