#!/usr/bin/python3
"""End-to-end benchmark: Ferry and biboumi side by side (issue 8).

    /usr/bin/python3 bench/e2e.py [--ferry build/ferry] [--users 1,100,1000] [...]

One private Prosody and one private ngircd (MaxPenaltyTime = 0) on loopback per gateway, the
gateway attached as a component, driven by the same lightweight XMPP clients and scripted IRC
peers (bench/rawxmpp.py, bench/rawirc.py) in this one asyncio process. For each gateway:
memory idle and with K users online, latency both ways at a low rate (and the floors without
any gateway), throughput with many users in parallel, the login storm after a restart, and CPU
seconds per 1,000 messages. The table goes to stdout and to bench/results/latest.md.

It prints figures and never fails because of them: the exit status is 1 only when Prosody or
ngircd cannot start (or on a bug in this script); a gateway that cannot do a step gets
"n/a (reason)" for the figures that need it. Every process it starts is stopped by its PID.
Environment: FERRY_BENCH_USERS (same as --users), FERRY_E2E_KEEP=1 keeps the directories.
--breakdown logs where each gateway's resident memory sits (/proc/PID/smaps) at each K.
"""

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import rig  # noqa: E402  (puts tests/e2e on the path)
import rawirc  # noqa: E402
import rawxmpp  # noqa: E402
from ferrytest import HarnessError, Ngircd, install_signal_cleanup, cleanup_all  # noqa: E402
from gateways import (BiboumiGateway, FerryGateway, GatewayError, body_of,  # noqa: E402
                      first_line)

PAD = ' the quick brown fox jumps over the lazy dog'  # a typical chat line's length


T0 = time.monotonic()


def log(msg):
    print('[e2e %6.1f] %s' % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


class ServerError(Exception):
    """Prosody or ngircd could not start: the only failure of make bench."""


EXPECTED = (GatewayError, rawxmpp.XmppError, rawirc.IrcError, asyncio.TimeoutError, OSError,
            HarnessError)


def reason_of(e):
    """A one-line reason for an n/a; a traceback on stderr for what is not a plain failure."""
    if not isinstance(e, EXPECTED):
        traceback.print_exception(e, file=sys.stderr)
    return first_line(e) if str(e) else type(e).__name__


def start_servers(users):
    """A started Prosody (with users) and ngircd; ServerError when either cannot start."""
    try:
        prosody = rig.make_prosody(users)
        ngircd = Ngircd(no_penalty=True).start()
    except HarnessError as e:
        raise ServerError(str(e))
    return prosody, ngircd


class NA:
    """A figure that could not be measured, with the reason."""

    def __init__(self, reason):
        self.reason = first_line(reason, 90)

    def __str__(self):
        return 'n/a (%s)' % self.reason


# ---------------------------------------------------------------- message tracking

class Flow:
    """A closed-loop sender: at most window messages in flight, count in all."""

    def __init__(self, tracker, send, count, window, on_done):
        self.tracker, self.send, self.left = tracker, send, count
        self.count, self.window, self.got, self.on_done = count, window, 0, on_done

    def start(self):
        for _ in range(min(self.window, self.left)):
            self.next()

    def next(self):
        self.left -= 1
        self.send(self.tracker.token(self))

    def delivered(self):
        self.got += 1
        if self.left > 0:
            self.next()
        if self.got == self.count:
            self.on_done()


class Tracker:
    """Stamps each message body with a sequence number and its send time; matches arrivals."""

    def __init__(self):
        self.seq = itertools.count(1)
        self.sent = {}
        self.lat = []
        self.errors = 0
        self.error_text = None
        self.last = None

    def token(self, flow=None):
        s = next(self.seq)
        self.sent[s] = (time.perf_counter(), flow)
        return 'm%d%s' % (s, PAD)

    def got(self, text, t):
        if not text or text[:1] not in ('m', b'm'):
            return
        try:
            s = int(text[1:].split(None, 1)[0])
        except (ValueError, IndexError):
            return
        entry = self.sent.pop(s, None)
        if entry is None:
            return
        self.lat.append(t - entry[0])
        self.last = t
        if entry[1] is not None:
            entry[1].delivered()

    def error(self, text):
        self.errors += 1
        self.error_text = self.error_text or text


class Bench:
    """The clients of one run and the tracker they report to."""

    def __init__(self):
        self.tracker = Tracker()
        self.xmpp = {}
        self.peers = []
        self.obs = None

    def on_xmpp_message(self, conn, el, t):
        if el.get('type') == 'error':
            self.tracker.error('%s from %s' % (rawxmpp.error_condition(el), el.get('from')))
            return
        self.tracker.got(body_of(el), t)

    def on_irc(self, conn, src, text, t):
        self.tracker.got(text, t)


async def limited(coros, n, timeout=None, what='the batch'):
    """Runs the coroutines at most n at a time; returns their results (exceptions included).
    With timeout: GatewayError when they have not all finished by then (the rest cancelled)."""
    sem = asyncio.Semaphore(n)

    async def one(c):
        async with sem:
            return await c
    gathered = asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
    try:
        return await asyncio.wait_for(gathered, timeout)
    except asyncio.TimeoutError:
        raise GatewayError('%s did not finish within %d s' % (what, timeout))


def raise_first(results, what):
    bad = [r for r in results if isinstance(r, BaseException)]
    if bad:
        raise GatewayError('%d of %d %s failed, first: %s' % (
            len(bad), len(results), what, first_line(bad[0])))


async def xmpp_login(bench, prosody, user):
    c = rawxmpp.XmppConn(user, prosody.domain, rig.USER_PASSWORD)
    c.on_message = bench.on_xmpp_message
    await c.connect('127.0.0.1', prosody.c2s_port)
    return c


async def irc_login(bench, ngircd, nick):
    c = rawirc.IrcConn(nick)
    c.on_privmsg = bench.on_irc
    for attempt in range(3):  # ngircd's listen backlog is 10: a storm of connects may time out
        try:
            return await c.connect('127.0.0.1', ngircd.port, timeout=15)
        except (asyncio.TimeoutError, OSError):
            if attempt == 2:
                raise
            c = rawirc.IrcConn(nick)
            c.on_privmsg = bench.on_irc


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


async def latency(tracker_owner, send, n, interval, timeout=20):
    """Sends n stamped messages one every interval seconds; returns (p50 ms, p99 ms, messages
    lost, first error text or None)."""
    tracker_owner.tracker = tr = Tracker()
    t0 = time.perf_counter()
    for i in range(n):
        send(tr.token())
        await asyncio.sleep(max(0.0, t0 + (i + 1) * interval - time.perf_counter()))
    deadline = time.perf_counter() + timeout
    while tr.sent and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    if not tr.lat:
        raise GatewayError('none of %d messages arrived%s' % (
            n, '; errors: %s' % tr.error_text if tr.errors else ''))
    return (percentile(tr.lat, 50) * 1000, percentile(tr.lat, 99) * 1000, len(tr.sent),
            tr.error_text)


# ---------------------------------------------------------------- floors

async def floors(opts, res):
    """Latency without any gateway: XMPP client to client on Prosody, IRC to IRC on ngircd."""
    log('floors: XMPP client to client on Prosody, IRC client to client on ngircd')
    prosody, ngircd = start_servers(['floora', 'floorb'])
    bench = Bench()
    try:
        a = await xmpp_login(bench, prosody, 'floora')
        b = await xmpp_login(bench, prosody, 'floorb')
        b.presence()  # available: Prosody delivers to the bare JID
        await asyncio.sleep(0.2)
        try:
            res['floor_xmpp'] = await latency(bench, lambda tok: a.message(b.bare, tok),
                                              opts.latency_messages, opts.latency_interval)
        except GatewayError as e:
            res['floor_xmpp'] = NA(e)
        p = await irc_login(bench, ngircd, 'floorp')
        q = await irc_login(bench, ngircd, 'floorq')
        try:
            res['floor_irc'] = await latency(bench, lambda tok: p.privmsg('floorq', tok),
                                             opts.latency_messages, opts.latency_interval)
        except GatewayError as e:
            res['floor_irc'] = NA(e)
        for c in (a, b, p, q):
            c.close()
    finally:
        await asyncio.to_thread(ngircd.close)
        await asyncio.to_thread(prosody.close)


# ---------------------------------------------------------------- one gateway

class GatewayRun:
    def __init__(self, opts, kind):
        self.opts = opts
        self.kind = kind
        self.res = {}
        self.bench = Bench()
        self.reached = 0  # users signed on

    def na(self, keys, reason):
        for k in keys:
            self.res.setdefault(k, NA(reason))

    async def run(self):
        opts = self.opts
        kmax = max(opts.users)
        users = ['u%04d' % i for i in range(kmax)]
        self.prosody, self.ngircd = start_servers(users + ['probe'])
        try:
            await self._run(kmax)
        finally:
            await self._teardown()

    async def _teardown(self):
        for c in list(self.bench.xmpp.values()) + self.bench.peers + [self.bench.obs]:
            if c is not None:
                c.close()
        await asyncio.sleep(0.2)
        gw = getattr(self, 'gw', None)
        stops = ([gw.stop()] if gw is not None else []) + [
            asyncio.to_thread(self.ngircd.close), asyncio.to_thread(self.prosody.close)]
        for stop in stops:  # one after the other: the gateway first
            try:
                await stop
            except Exception as e:  # keep stopping the rest; cleanup_all is the backstop
                log('teardown: %s' % reason_of(e))

    def nick(self, i):
        return '%s%04d' % (self.gw.nick_prefix, i)

    def peer_of(self, i):
        return self.bench.peers[i % len(self.bench.peers)]

    async def _run(self, kmax):
        opts, bench = self.opts, self.bench
        if self.kind == 'ferry':
            self.gw = FerryGateway(opts.ferry, self.prosody, self.ngircd, opts.login_rate)
        else:
            self.gw = BiboumiGateway(self.prosody, self.ngircd)
        name = self.gw.name
        bench.obs = await irc_login(bench, self.ngircd, 'observer')
        npeers = max(1, min(opts.peers, kmax))
        res = await limited([irc_login(bench, self.ngircd, 'p%03d' % j) for j in range(npeers)],
                            20)
        raise_first(res, 'IRC peer logins')
        bench.peers = res
        self.probe = await xmpp_login(bench, self.prosody, 'probe')
        self.base = await bench.obs.users()
        log('%s: starting' % name)
        t0 = time.perf_counter()
        try:
            await self.gw.start(self.probe)
        except GatewayError as e:
            log('%s: %s' % (name, e))
            self.na(ALL_KEYS + ['rss_%d' % k for k in opts.users], e)
            return
        self.res['ready'] = time.perf_counter() - t0
        await asyncio.sleep(2)
        self.res['rss_idle'] = rig.rss_kb(self.gw.pid)
        self.res['cpu_idle_0'] = await self.idle_cpu()
        steps = [
            ('memory', self.memory,
             ['rss_%d' % k for k in opts.users] + ['kb_per_user', 'cpu_idle_k']),
            ('latency', self.latency, ['lat_x2i', 'lat_i2x']),
            ('throughput', self.throughput, ['tput_x2i', 'tput_i2x', 'cpu_x2i', 'cpu_i2x']),
            ('login storm', self.storm, ['storm']),
        ]
        for what, fn, keys in steps:
            if not self.gw.alive():
                self.na(keys, 'the gateway exited')
                continue
            try:
                await fn()
            except ServerError:
                raise
            except Exception as e:
                reason = reason_of(e)
                log('%s: %s: %s' % (name, what, reason))
                if not self.gw.alive():
                    reason = 'the gateway exited: %s' % reason
                    log(self.gw.log_tail())
                self.na(keys, reason)

    # -- memory: bring users online step by step

    async def memory(self):
        opts, bench = self.opts, self.bench
        cur = 0
        for k in sorted(opts.users):
            t0 = time.perf_counter()
            new = list(range(cur, k))
            log('%s: bringing users %d..%d online' % (self.gw.name, cur + 1, k))
            budget = 120 + 3 * len(new) / opts.login_rate
            res = await limited([xmpp_login(bench, self.prosody, 'u%04d' % i) for i in new], 50,
                                budget, 'XMPP logins')
            for i, c in zip(new, res):
                if not isinstance(c, BaseException):
                    bench.xmpp[i] = c  # closed at teardown even when others failed
            raise_first(res, 'XMPP logins')
            res = await limited([self.gw.prepare(bench.xmpp[i], self.nick(i)) for i in new],
                                100, budget, 'user set-ups')
            raise_first(res, 'user set-ups')
            await self.go_online(new)
            await self.wait_signed_on(k, max(60, 3 * len(new) / opts.login_rate))
            self.reached = k
            await self.converse(new)
            await asyncio.sleep(opts.settle)
            self.res['rss_%d' % k] = rig.rss_kb(self.gw.pid)
            self.res['step_%d' % k] = time.perf_counter() - t0
            self.res['threads'] = rig.threads(self.gw.pid)
            log('%s: %d users online, RSS %s kB' % (self.gw.name, k, self.res['rss_%d' % k]))
            if opts.breakdown:
                for what, count, kb in rig.rss_breakdown(self.gw.pid):
                    log('    %8d kB in %5d mapping(s) %s' % (kb, count, what))
            cur = k
        self.res['cpu_idle_k'] = await self.idle_cpu()
        ks = sorted(opts.users)
        lo, hi = ks[0], ks[-1]
        if hi > lo:
            self.res['kb_per_user'] = (self.res['rss_%d' % hi] - self.res['rss_%d' % lo]) / (
                hi - lo)

    async def idle_cpu(self, seconds=3.0):
        """The gateway's CPU use while nothing happens, in % of one core."""
        c0, t0 = rig.cpu_seconds(self.gw.pid), time.perf_counter()
        await asyncio.sleep(seconds)
        c1, t1 = rig.cpu_seconds(self.gw.pid), time.perf_counter()
        return None if c0 is None or c1 is None else (c1 - c0) / (t1 - t0) * 100

    async def go_online(self, idx):
        """Asks the gateway to bring the users on IRC. Ferry paces logins itself
        ([legacy] login_rate); biboumi connects at once, so the clients pace its users."""
        if self.gw.relogin_by_gateway:
            for i in idx:
                self.gw.online(self.bench.xmpp[i], self.nick(i))
            return
        t0 = time.perf_counter()
        for n, i in enumerate(idx):
            self.gw.online(self.bench.xmpp[i], self.nick(i))
            await asyncio.sleep(max(0.0, t0 + (n + 1) / self.opts.login_rate
                                    - time.perf_counter()))

    async def wait_signed_on(self, k, timeout, samples=None):
        """Waits until the IRC server counts k gateway users; returns the time it happened.
        samples, a list, gets (time, users) at each poll."""
        deadline = time.perf_counter() + timeout
        n = None
        while True:
            n = await self.bench.obs.users() - self.base
            if samples is not None:
                samples.append((time.perf_counter(), n))
            if n >= k:
                return time.perf_counter()
            if not self.gw.alive():
                raise GatewayError('exited with %d of %d users on IRC' % (n, k))
            if time.perf_counter() > deadline:
                raise GatewayError('%d of %d users on IRC after %d s' % (n, k, timeout))
            await asyncio.sleep(0.1)

    async def converse(self, idx, timeout=60):
        """One message each way between each new user and its peer (so each holds a 1:1
        conversation), all delivered."""
        bench = self.bench
        bench.tracker = tr = Tracker()
        for i in idx:
            bench.xmpp[i].message(self.gw.contact(self.peer_of(i).nick), tr.token())
            self.peer_of(i).privmsg(self.nick(i), tr.token())
        deadline = time.perf_counter() + timeout
        while tr.sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        if tr.sent:
            raise GatewayError('%d of %d conversation messages not delivered%s' % (
                len(tr.sent), 2 * len(idx),
                ' (errors: %s)' % tr.error_text if tr.errors else ''))

    # -- latency

    async def latency(self):
        if not self.reached:
            raise GatewayError('no user online')
        c, peer = self.bench.xmpp[0], self.peer_of(0)
        log('%s: latency, %d messages each way' % (self.gw.name, self.opts.latency_messages))
        contact = self.gw.contact(peer.nick)
        self.res['lat_x2i'] = await latency(self.bench, lambda tok: c.message(contact, tok),
                                            self.opts.latency_messages, self.opts.latency_interval)
        nick = self.nick(0)
        self.res['lat_i2x'] = await latency(self.bench, lambda tok: peer.privmsg(nick, tok),
                                            self.opts.latency_messages, self.opts.latency_interval)

    # -- throughput and CPU

    async def throughput(self):
        nflows = min(self.opts.tput_users, self.reached)
        if not nflows:
            raise GatewayError('no user online')
        for key, direction in (('x2i', 'XMPP to IRC'), ('i2x', 'IRC to XMPP')):
            log('%s: throughput %s, %d users' % (self.gw.name, direction, nflows))
            try:
                await self._throughput(key, nflows)
            except GatewayError as e:
                self.na(['tput_' + key, 'cpu_' + key], e)
            if not self.gw.alive():
                raise GatewayError('the gateway exited')

    def _pids(self):
        return {self.gw.name: self.gw.pid, 'Prosody': self.prosody.proc.pid,
                'ngircd': self.ngircd.proc.pid, 'bench clients': os.getpid()}

    async def _throughput(self, key, nflows):
        bench, opts = self.bench, self.opts
        bench.tracker = tr = Tracker()
        per = max(1, opts.tput_messages // nflows)
        done = asyncio.Event()
        remaining = [nflows]

        def one_done():
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        flows = []
        for i in range(nflows):
            if key == 'x2i':
                conn, to = bench.xmpp[i], self.gw.contact(self.peer_of(i).nick)
                send = (lambda c, t: lambda tok: c.message(t, tok))(conn, to)
            else:
                peer, to = self.peer_of(i), self.nick(i)
                send = (lambda p, t: lambda tok: p.privmsg(t, tok))(peer, to)
            flows.append(Flow(tr, send, per, opts.window, one_done))
        pids = self._pids()
        cpu0 = {n: rig.cpu_seconds(p) for n, p in pids.items()}
        threads0 = rig.thread_cpu(self.gw.pid)
        t0 = time.perf_counter()
        for f in flows:
            f.start()
        timed_out = False
        try:
            await asyncio.wait_for(done.wait(), opts.tput_timeout)
        except asyncio.TimeoutError:
            timed_out = True
        t1 = time.perf_counter()
        cpu1 = {n: rig.cpu_seconds(p) for n, p in pids.items()}
        threads = rig.busiest_threads(threads0, rig.thread_cpu(self.gw.pid), t1 - t0)
        delivered = len(tr.lat)
        if not delivered:
            raise GatewayError('nothing delivered%s' % (
                ' (errors: %s)' % tr.error_text if tr.errors else ''))
        elapsed = (tr.last if tr.last else t1) - t0
        use = {n: (cpu1[n] - cpu0[n]) / elapsed * 100 for n in pids
               if cpu0[n] is not None and cpu1[n] is not None}
        busiest = sorted(use.items(), key=lambda kv: -kv[1])
        limit = self._limit(busiest, threads, nflows, statistics.mean(tr.lat) * 1000)
        if timed_out:
            limit = 'stopped after %d s with %d of %d delivered; %s' % (
                opts.tput_timeout, delivered, per * nflows, limit)
        if tr.errors:
            limit += '; %d error replies (%s)' % (tr.errors, tr.error_text)
        self.res['tput_' + key] = (delivered / elapsed, limit)
        gw_cpu = cpu1[self.gw.name] - cpu0[self.gw.name]
        self.res['cpu_' + key] = gw_cpu / delivered * 1000
        log('%s: %.0f msg/s, %s' % (self.gw.name, delivered / elapsed, limit))

    def _limit(self, busiest, threads, nflows, mean_ms):
        """What limited a throughput run: a process or a thread of the gateway at a full
        core, all cores busy, or none of these: then messages wait in a queue that does not
        burn CPU (a timer, a lock, a bounded buffer), for the mean latency given."""
        ncpu = os.cpu_count() or 1
        total = sum(v for _, v in busiest)
        shares = ', '.join('%s %.0f%%' % (n, v) for n, v in busiest)
        top, topv = busiest[0]
        inflight = '%d in flight, mean latency %.0f ms' % (nflows * self.opts.window, mean_ms)
        if topv >= 85:
            head = '%s-bound' % top
        elif threads and threads[0][1] >= 85:
            head = '%s-bound: its thread "%s" at %.0f%% of a core' % (
                self.gw.name, threads[0][0], threads[0][1])
        elif total >= 75 * ncpu:
            head = 'CPU-bound (the %d cores %.0f%% busy)' % (ncpu, total / ncpu)
        else:
            head = ('no process or gateway thread at a full core: messages wait in a queue '
                    'that does not burn CPU (%s)' % inflight)
            inflight = None
        tops = ('; busiest %s threads %s' % (self.gw.name, ', '.join(
            '%.0f%%' % v for _, v in threads)) if len(threads) > 1 else '')
        return '%s; CPU of a core: %s%s%s' % (head, shares, tops,
                                             '; %s' % inflight if inflight else '')

    # -- login storm

    async def storm(self):
        """Restarts the gateway with every user online, opts.storm_runs times; the figure is
        the median time from the process start to all users on IRC."""
        k = self.reached
        if not k:
            raise GatewayError('no user online')
        runs, extra, overflows = [], 0, 0
        for r in range(self.opts.storm_runs):
            log('%s: login storm %d/%d, restart with %d users online' % (
                self.gw.name, r + 1, self.opts.storm_runs, k))
            seconds, t90, received, dropped = await self._storm_once(k)
            runs.append('%.1f (90%% at %.1f)' % (seconds, t90))
            extra += received - k
            overflows = None if dropped is None or overflows is None else overflows + dropped
            self.res.setdefault('storm_times', []).append(seconds)
        how = ('probe at start, login_rate %g/s' % self.opts.login_rate
               if self.gw.relogin_by_gateway else
               'each user rejoins, paced by the clients at %g/s' % self.opts.login_rate)
        self.res['storm'] = (statistics.median(self.res['storm_times']),
                             '%d users; %s; runs %s s; %s; listen queue overflows %s' % (
            k, how, ', '.join(runs),
            'ngircd accepted exactly %d connections per run' % k if not extra else
            'ngircd accepted %+d connections more than users (retries)' % extra,
            '?' if overflows is None else overflows))
        await asyncio.sleep(self.opts.settle)
        self.res['rss_after_storm'] = rig.rss_kb(self.gw.pid)

    async def _storm_once(self, k):
        await self.gw.stop()
        deadline = time.perf_counter() + 30
        while await self.bench.obs.users() - self.base > 0:
            if time.perf_counter() > deadline:
                raise GatewayError('IRC connections still open 30 s after the gateway stopped')
            await asyncio.sleep(0.1)
        received0 = await self.bench.obs.connections_received()
        overflows0 = rig.listen_overflows()
        t0 = time.perf_counter()
        await self.gw.start(self.probe)
        if not self.gw.relogin_by_gateway:
            await self.go_online(list(range(k)))
        samples = []
        t1 = await self.wait_signed_on(k, max(60, 5 * k / self.opts.login_rate), samples)
        overflows1 = rig.listen_overflows()
        t90 = next(t for t, n in samples if n >= 0.9 * k)
        received = await self.bench.obs.connections_received() - received0
        dropped = None if overflows0 is None or overflows1 is None else overflows1 - overflows0
        return t1 - t0, t90 - t0, received, dropped


# ---------------------------------------------------------------- the table

def fmt(v, unit):
    if v is None:
        return '-'
    if isinstance(v, NA):
        return str(v)
    if unit == 'MB':
        return '%.1f' % (v / 1024.0)
    if unit == 'ms':
        return '%.3f' % v if v < 1 else '%.2f' % v
    if unit in ('kB', 's'):
        return '%.1f' % v if v < 100 else '%.0f' % v
    if unit == 'msg/s':
        return '%.0f' % v
    if unit == 'cpu':
        return '%.3f' % v
    if unit == '%':
        return '%.1f' % v
    return str(v)


def value(res, key, part=None):
    v = res.get(key)
    if isinstance(v, tuple) and part is not None:
        return v[part]
    return v


def rows(opts):
    """(label, key, part, unit, note key or text)"""
    out = [('Ready after start (s)', 'ready', None, 's', 'process start to disco#info answer'),
           ('RSS idle (MB)', 'rss_idle', None, 'MB', 'attached, no user')]
    for k in sorted(opts.users):
        out.append(('RSS, %d user%s online (MB)' % (k, '' if k == 1 else 's'), 'rss_%d' % k,
                    None, 'MB', 'each user signed on and in a 1:1 conversation'))
    out += [
        ('Memory per online user (kB)', 'kb_per_user', None, 'kB',
         'RSS(K=%d) - RSS(K=%d) over the users added' % (max(opts.users), min(opts.users))),
        ('CPU idle, no user (% of a core)', 'cpu_idle_0', None, '%', 'over 3 s'),
        ('CPU idle, %d users online (%% of a core)' % max(opts.users), 'cpu_idle_k', None, '%',
         'over 3 s, nobody writing'),
        ('Latency XMPP->IRC p50 (ms)', 'lat_x2i', 0, 'ms', 'lat_x2i'),
        ('Latency XMPP->IRC p99 (ms)', 'lat_x2i', 1, 'ms', None),
        ('Latency IRC->XMPP p50 (ms)', 'lat_i2x', 0, 'ms', 'lat_i2x'),
        ('Latency IRC->XMPP p99 (ms)', 'lat_i2x', 1, 'ms', None),
        ('Gateway share XMPP->IRC p50 (ms)', 'share_x2i', None, 'ms',
         'p50 - XMPP floor p50 - IRC floor p50'),
        ('Gateway share IRC->XMPP p50 (ms)', 'share_i2x', None, 'ms',
         'p50 - XMPP floor p50 - IRC floor p50'),
        ('Throughput XMPP->IRC (msg/s)', 'tput_x2i', 0, 'msg/s', 'tput_x2i'),
        ('Throughput IRC->XMPP (msg/s)', 'tput_i2x', 0, 'msg/s', 'tput_i2x'),
        ('CPU per 1,000 msgs XMPP->IRC (s)', 'cpu_x2i', None, 'cpu',
         'gateway utime+stime (/proc/PID/stat) during the throughput run'),
        ('CPU per 1,000 msgs IRC->XMPP (s)', 'cpu_i2x', None, 'cpu', None),
        ('Login storm: all users on IRC after a restart (s)', 'storm', 0, 's', 'storm'),
        ('RSS after the storm (MB)', 'rss_after_storm', None, 'MB', None),
        ('Threads at the end of the ramp', 'threads', None, '', None),
    ]
    return out


ALL_KEYS = ['ready', 'rss_idle', 'kb_per_user', 'cpu_idle_0', 'cpu_idle_k', 'lat_x2i', 'lat_i2x',
            'share_x2i', 'share_i2x', 'tput_x2i', 'tput_i2x', 'cpu_x2i', 'cpu_i2x', 'storm',
            'rss_after_storm', 'threads']


def add_shares(res, floor):
    fx, fi = floor.get('floor_xmpp'), floor.get('floor_irc')
    for key in ('x2i', 'i2x'):
        lat = res.get('lat_' + key)
        if isinstance(lat, tuple) and isinstance(fx, tuple) and isinstance(fi, tuple):
            res['share_' + key] = lat[0] - fx[0] - fi[0]
        elif isinstance(lat, NA):
            res['share_' + key] = lat


def note_for(note, results):
    if note is None:
        return ''
    if note in ('lat_x2i', 'lat_i2x'):
        lost = ['%s lost %d' % (name, res[note][2]) for name, res in results
                if isinstance(res.get(note), tuple) and res[note][2]]
        return 'one user, one peer, %d messages, one every %g ms%s' % (
            OPTS.latency_messages, OPTS.latency_interval * 1000,
            ''.join('; ' + x for x in lost))
    if note in ('tput_x2i', 'tput_i2x', 'storm'):
        parts = ['%s: %s' % (name, res[note][1]) for name, res in results
                 if isinstance(res.get(note), tuple)]
        return ' / '.join(parts)
    return note


def ratio(a, b, unit):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b and unit:
        return '%.2f' % (a / b)
    return ''


def table(opts, results, floor):
    names = ' | '.join(name for name, _ in results)
    lines = ['| Figure | %s | Ferry/biboumi | What limits it, notes |' % names,
             '|---|%s---|---|' % ('---|' * len(results))]
    down = dict((name, res['ready']) for name, res in results if isinstance(res.get('ready'), NA))
    for label, key, part, unit, note in rows(opts):
        vals = [NA('see below') if name in down else value(res, key, part)
                for name, res in results]
        if all(v is None for v in vals):
            continue
        cells = [fmt(v, unit) for v in vals]
        byname = dict((name, v) for (name, _), v in zip(results, vals))
        r = ratio(byname.get('Ferry'), byname.get('biboumi'), unit)
        lines.append('| %s | %s | %s | %s |' % (label, ' | '.join(cells), r,
                                               note_for(note, results)))
    lines.append('')
    for name, why in down.items():
        lines.append('%s did not run: %s.' % (name, why.reason))
        lines.append('')
    fx, fi = floor.get('floor_xmpp'), floor.get('floor_irc')

    def fl(v):
        if isinstance(v, tuple):
            return 'p50 %s ms, p99 %s ms' % (fmt(v[0], 'ms'), fmt(v[1], 'ms'))
        return str(v) if v is not None else 'not measured'
    lines.append('Floors without a gateway (same clients, same rate): XMPP client to client on '
                 'Prosody %s; IRC client to client on ngircd %s.' % (fl(fx), fl(fi)))
    return '\n'.join(lines)


def version(pkg):
    try:
        r = subprocess.run(['dpkg-query', '-W', '-f', '${Version}', pkg], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or '?'
    except (OSError, subprocess.TimeoutExpired):
        return '?'


def ferry_version(binary):
    try:
        r = subprocess.run([binary, '--version'], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or '?'
    except (OSError, subprocess.TimeoutExpired):
        return 'not built'


def report(opts, results, floor, elapsed):
    head = [
        '# End-to-end benchmark: Ferry and biboumi side by side',
        '',
        'Written by `make bench` (bench/e2e.py) on %s, in %.0f s.' % (
            time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), elapsed),
        '',
        '- Machine: %s' % rig.machine(),
        '- Versions: %s (%s); biboumi %s; Prosody %s; ngIRCd %s; libpurple %s; Python %s' % (
            ferry_version(opts.ferry), opts.ferry, version('biboumi'), version('prosody'),
            version('ngircd'), version('libpurple0'), platform.python_version()),
        '- Rig: one private Prosody and one private ngircd (MaxPenaltyTime = 0) on loopback '
        'per gateway; biboumi with throttle_limit = -1 (ad-hoc configure); Ferry logging at '
        'info, with libpurple\'s IRC flood control off ([legacy] ratelimit-interval = 0). '
        'Clients: one raw XMPP stream per user and %d scripted IRC peers, all in one '
        'asyncio process (bench clients).' % min(opts.peers, max(opts.users)),
        '- K = %s; latency: %d messages each way, one every %g ms; throughput: %d users '
        'in parallel, window %d messages each, %d messages per direction; login pacing %g/s.'
        % (', '.join(str(k) for k in sorted(opts.users)), opts.latency_messages,
           opts.latency_interval * 1000, opts.tput_users, opts.window, opts.tput_messages,
           opts.login_rate),
        '',
        '',
    ]
    return '\n'.join(head) + table(opts, results, floor) + '\n'


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--ferry', default=os.path.join(rig.REPO, 'build', 'ferry'))
    ap.add_argument('--users', default=os.environ.get('FERRY_BENCH_USERS', '1,100,1000'),
                    help='K values, comma separated (default 1,100,1000)')
    ap.add_argument('--gateways', default='ferry,biboumi')
    ap.add_argument('--peers', type=int, default=100, help='scripted IRC peers')
    ap.add_argument('--latency-messages', type=int, default=300)
    ap.add_argument('--latency-interval', type=float, default=0.01, help='seconds')
    ap.add_argument('--tput-users', type=int, default=100)
    ap.add_argument('--tput-messages', type=int, default=20000, help='per direction')
    ap.add_argument('--tput-timeout', type=int, default=60)
    ap.add_argument('--window', type=int, default=50, help='messages in flight per user')
    ap.add_argument('--login-rate', type=float, default=300.0,
                    help='Ferry [legacy] login_rate, and the pacing of biboumi users')
    ap.add_argument('--storm-runs', type=int, default=3, help='restarts for the login storm')
    ap.add_argument('--settle', type=float, default=2.0, help='seconds before reading RSS')
    ap.add_argument('--breakdown', action='store_true',
                    help='log where the gateway\'s RSS sits (smaps) at each K')
    ap.add_argument('--output', default=os.path.join(HERE, 'results', 'latest.md'))
    opts = ap.parse_args(argv)
    opts.users = sorted(set(int(k) for k in opts.users.split(',') if k.strip()))
    opts.ferry = os.path.abspath(opts.ferry)
    return opts


OPTS = None


async def main_async(opts):
    floor = {}
    try:
        await floors(opts, floor)
    except ServerError:
        raise
    except Exception as e:
        e = reason_of(e)
        floor['floor_xmpp'] = floor.get('floor_xmpp') or NA(e)
        floor['floor_irc'] = floor.get('floor_irc') or NA(e)
    results = []
    for kind in [g.strip() for g in opts.gateways.split(',') if g.strip()]:
        run = GatewayRun(opts, kind)
        name = 'Ferry' if kind == 'ferry' else 'biboumi'
        try:
            await run.run()
        except ServerError:
            raise
        except Exception as e:  # the clients could not even be set up: no figure at all
            e = reason_of(e)
            log('%s: %s' % (name, e))
            run.na(ALL_KEYS + ['rss_%d' % k for k in opts.users], e)
        add_shares(run.res, floor)
        results.append((name, run.res))
    return results, floor


def main(argv):
    global OPTS
    OPTS = opts = parse_args(argv)
    install_signal_cleanup()
    start = time.monotonic()
    try:
        results, floor = asyncio.run(main_async(opts))
    except ServerError as e:
        print('bench/e2e.py: a server could not start: %s' % e, file=sys.stderr)
        cleanup_all()
        return 1
    text = report(opts, results, floor, time.monotonic() - start)
    print()
    print(text)
    os.makedirs(os.path.dirname(opts.output), exist_ok=True)
    with open(opts.output, 'w') as f:
        f.write(text)
    print('(written to %s)' % os.path.relpath(opts.output))
    cleanup_all()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
