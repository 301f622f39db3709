"""Harness for Ferry's end-to-end tests: real Prosody, real ngircd, the real build/ferry.

Every server runs as a child process with a private config in a private temporary directory,
on free loopback ports, and is stopped by its PID (SIGTERM, bounded wait, SIGKILL). Cleanup is
registered when a fixture is made, so it runs even when a test fails, and again at exit or on
a signal. Every wait has a deadline. A server that cannot start raises HarnessError (an
AssertionError, so the test FAILS) carrying the tail of its log.

The XMPP client wraps slixmpp (its asyncio loop on a background thread) behind a small
synchronous API that speaks raw XML and returns ElementTree elements, so tests assert on the
exact stanzas that came back.

Environment: FERRY_BINARY (absolute path of build/ferry), FERRY_E2E_KEEP=1 keeps the
temporary directories, FERRY_E2E_DEBUG=1 turns on slixmpp's debug log, FERRY_E2E_WRAPPER
prefixes the daemon's command line (e.g. "valgrind -q --error-exitcode=99"), FERRY_E2E_SLOWDOWN
stretches the waits that depend on Ferry's own speed (scaled(); default 4 with a wrapper, else 1).
"""

import asyncio
import atexit
import copy
import glob
import hashlib
import itertools
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

DOMAIN = 'localhost'
COMPONENT = 'irc.localhost'
PROSODY = os.environ.get('FERRY_E2E_PROSODY', 'prosody')
PROSODYCTL = os.environ.get('FERRY_E2E_PROSODYCTL', 'prosodyctl')
NGIRCD = os.environ.get('FERRY_E2E_NGIRCD', 'ngircd')

NS = {
    'c': 'jabber:client',
    'stanzas': 'urn:ietf:params:xml:ns:xmpp-stanzas',
    'info': 'http://jabber.org/protocol/disco#info',
    'items': 'http://jabber.org/protocol/disco#items',
    'agents': 'jabber:iq:agents',
    'agent': 'jabber:iq:agent',
    'gateway': 'jabber:iq:gateway',
    'version': 'jabber:iq:version',
    'time': 'urn:xmpp:time',
    'oldtime': 'jabber:iq:time',
    'last': 'jabber:iq:last',
    'vcard': 'vcard-temp',
    'ping': 'urn:xmpp:ping',
    'register': 'jabber:iq:register',
    'search': 'jabber:iq:search',
    'data': 'jabber:x:data',
}


class HarnessError(AssertionError):
    """A fixture could not do its job: the test fails (never skips) with this message."""


# Under valgrind (make check-valgrind) Ferry runs one thread at a time and its own work takes
# about 4 times as long end to end (test_hostile's flood of 3,000 messages: 0.6 s natively,
# 2.5 s), while the servers and clients keep their speed: only waits on Ferry's work stretch.
SLOWDOWN = float(os.environ.get('FERRY_E2E_SLOWDOWN') or
                 (4 if os.environ.get('FERRY_E2E_WRAPPER') else 1))


def scaled(seconds):
    """seconds of waiting for something Ferry does, stretched by SLOWDOWN."""
    return seconds * SLOWDOWN


# ---------------------------------------------------------------- waiting, ports, cleanup

def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate until it returns a true value (returned) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError('timed out after %.1f s waiting for %s' % (timeout, what))
        time.sleep(interval)


_ports_given = set()


def free_port():
    """A loopback TCP port that was free a moment ago (never the same one twice per run)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise HarnessError('no free loopback port')


def port_open(port, host='127.0.0.1'):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path, lines=40):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return '(no log at %s: %s)' % (path, e)
    text = data.decode('utf-8', 'replace').splitlines()
    return '\n'.join(text[-lines:])


_cleanups = []  # callables, run last-registered first
_cleanup_lock = threading.RLock()


def register_cleanup(fn):
    with _cleanup_lock:
        _cleanups.append(fn)
    return fn


def unregister_cleanup(fn):
    with _cleanup_lock:
        if fn in _cleanups:
            _cleanups.remove(fn)


def cleanup_all():
    """Runs every registered cleanup (idempotent): stops processes, removes directories."""
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning the rest
            print('e2e cleanup: %r' % (e,))


def _on_signal(signum, frame):
    cleanup_all()
    os._exit(128 + signum)


def install_signal_cleanup():
    """Called by run.py: a SIGTERM/SIGINT/SIGHUP to the runner still stops every child."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


atexit.register(cleanup_all)


def private_dir(name):
    path = tempfile.mkdtemp(prefix='ferry-e2e-%s-' % name)

    def remove():
        if not os.environ.get('FERRY_E2E_KEEP'):
            shutil.rmtree(path, ignore_errors=True)
    register_cleanup(remove)
    return path


class Process:
    """One child process, output to a file, stopped by its PID only."""

    def __init__(self, name, argv, output, cwd=None, env=None):
        self.name = name
        self.argv = argv
        self.output = output
        self._out = open(output, 'ab')
        try:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                          stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                          start_new_session=True)
        except OSError as e:
            self._out.close()
            raise HarnessError('%s: cannot start %s: %s' % (name, argv[0], e))
        self.pid = self.popen.pid
        self._cleanup = register_cleanup(self.stop)

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def send_signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)  # os.kill on this PID, only while not yet reaped

    def wait(self, timeout):
        """The exit status, or None if still running after timeout seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig, waits up to timeout, then SIGKILL. Returns the exit status."""
        if self.alive():
            self.send_signal(sig)
            if self.wait(timeout) is None:
                self.send_signal(signal.SIGKILL)
                self.wait(10)
        unregister_cleanup(self._cleanup)
        if not self._out.closed:
            self._out.close()
        return self.popen.returncode


# ---------------------------------------------------------------- Prosody

PROSODY_CONFIG = '''-- Private Prosody for Ferry's end-to-end tests (written by tests/e2e/ferrytest.py).
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{ }}
certificates = "{dir}/certs"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{ }}
component_ports = {{ {component_port} }}
component_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = true
authentication = "internal_hashed"
storage = "internal"
modules_enabled = {{
    "roster"; "saslauth"; "disco"; "ping"; "posix"; "register";
    "version"; "time"; "uptime"; "lastactivity"; "presence";
}}
modules_disabled = {{ "s2s"; }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
{extra}
VirtualHost "{domain}"

Component "{component}"
    component_secret = "{secret}"
'''


class Prosody:
    """A private Prosody: VirtualHost DOMAIN and the component COMPONENT."""

    def __init__(self, secret=None, extra=''):
        self.dir = private_dir('prosody')
        os.makedirs(os.path.join(self.dir, 'data'), mode=0o700)
        os.makedirs(os.path.join(self.dir, 'certs'), mode=0o700)
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.secret = secret or 'e2e-component-' + secrets.token_hex(8)
        self.domain = DOMAIN
        self.component = COMPONENT
        self.config = os.path.join(self.dir, 'prosody.cfg.lua')
        self.log = os.path.join(self.dir, 'prosody.log')
        self.output = os.path.join(self.dir, 'prosody.out')
        with open(self.config, 'w') as f:
            f.write(PROSODY_CONFIG.format(dir=self.dir, c2s_port=self.c2s_port,
                                          component_port=self.component_port,
                                          domain=DOMAIN, component=COMPONENT,
                                          secret=self.secret, extra=extra))
        self.proc = None
        self._passwords = {}
        self._probe = None
        register_cleanup(self.close)

    def start(self, timeout=20):
        if self.proc and self.proc.alive():
            return self
        self.proc = Process('prosody', [PROSODY, '-F', '--config', self.config], self.output)
        wait_until(lambda: self._ready(), timeout, 'prosody to listen')
        return self

    def _ready(self):
        if not self.proc.alive():
            raise HarnessError('prosody exited with status %s:\n%s\n%s' % (
                self.proc.returncode, tail(self.output, 20), tail(self.log)))
        return port_open(self.c2s_port) and port_open(self.component_port)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the server (SIGTERM, or SIGKILL for a crash). Data and ports are kept."""
        self.close_probe()
        rc = self.proc.stop(sig, timeout) if self.proc else None
        # Make sure the ports are really released before anyone starts again on them.
        wait_until(lambda: not port_open(self.c2s_port) and not port_open(self.component_port),
                   10, 'prosody ports to close')
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        return self.start()

    def register(self, user, password=None):
        """Creates user@DOMAIN with prosodyctl; returns (bare JID, password)."""
        password = password or 'pw-' + secrets.token_hex(6)
        argv = [PROSODYCTL, '--config', self.config, 'register', user, DOMAIN, password]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
        except subprocess.TimeoutExpired:
            raise HarnessError('prosodyctl register %s timed out' % user)
        if r.returncode != 0:
            raise HarnessError('prosodyctl register %s failed (%d):\n%s' % (
                user, r.returncode, r.stdout.decode('utf-8', 'replace')))
        self._passwords[user] = password
        return '%s@%s' % (user, DOMAIN), password

    def client(self, user, password=None, resource='e2e', timeout=10):
        """A connected XmppClient for user (registered here if needed)."""
        if user not in self._passwords or password is not None:
            self.register(user, password)
        return XmppClient('%s@%s/%s' % (user, DOMAIN, resource), self._passwords[user],
                          self.c2s_port, timeout=timeout)

    def probe(self):
        """A client owned by this fixture, for polling the component (reconnected as needed)."""
        if self._probe is None or not self._probe.connected:
            self.close_probe()
            self._probe = self.client('probe', self._passwords.get('probe'), resource='probe')
        return self._probe

    def close_probe(self):
        if self._probe is not None:
            self._probe.disconnect()
            self._probe = None

    def log_text(self):
        try:
            with open(self.log, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def close(self):
        self.close_probe()
        if self.proc:
            self.proc.stop()


# ---------------------------------------------------------------- ngircd and a raw IRC peer

NGIRCD_CONFIG = '''# Private ngircd for Ferry's end-to-end tests (written by tests/e2e/ferrytest.py).
[Global]
    Name = irc.e2e.test
    AdminInfo1 = Ferry e2e tests
    AdminInfo2 = loopback
    AdminEMail = nobody@localhost
    Info = Ferry e2e test server
    Listen = 127.0.0.1
    Ports = {port}
    PidFile = {dir}/ngircd.pid
    ServerUID = nobody
    ServerGID = nogroup
    MotdPhrase = "Ferry e2e"
{password}
[Limits]
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 30
    PingTimeout = 120
{penalty}
[Options]
    PAM = no
    DNS = no
    Ident = no
{extra}
'''


class Ngircd:
    """A private ngircd on a free loopback port. password: require PASS. no_penalty: no
    flood throttling (MaxPenaltyTime = 0)."""

    def __init__(self, password=None, no_penalty=False, extra=''):
        self.dir = private_dir('ngircd')
        # ngircd drops to nobody: it must still reach its pid file.
        os.chmod(self.dir, 0o755)
        self.piddir = os.path.join(self.dir, 'run')
        os.makedirs(self.piddir)
        os.chmod(self.piddir, 0o777)
        self.port = free_port()
        self.password = password
        self.config = os.path.join(self.dir, 'ngircd.conf')
        self.output = os.path.join(self.dir, 'ngircd.out')
        with open(self.config, 'w') as f:
            f.write(NGIRCD_CONFIG.format(
                port=self.port, dir=self.piddir,
                password='    Password = %s' % password if password else '',
                penalty='    MaxPenaltyTime = 0' if no_penalty else '',
                extra=extra))
        self.proc = None
        register_cleanup(self.close)

    def start(self, timeout=15):
        if self.proc and self.proc.alive():
            return self
        self.proc = Process('ngircd', [NGIRCD, '-n', '-f', self.config], self.output)

        def ready():
            if not self.proc.alive():
                raise HarnessError('ngircd exited with status %s:\n%s' % (
                    self.proc.returncode, tail(self.output)))
            return port_open(self.port)
        wait_until(ready, timeout, 'ngircd to listen')
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10):
        rc = self.proc.stop(sig, timeout) if self.proc else None
        wait_until(lambda: not port_open(self.port), 10, 'ngircd port to close')
        return rc

    def client(self, nick, **kw):
        return IrcClient(self.port, nick, password=kw.pop('password', self.password), **kw)

    def log_text(self):
        try:
            with open(self.output, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def close(self):
        if self.proc:
            self.proc.stop()


class IrcClient:
    """A scripted IRC peer over a raw socket. Lines are kept (decoded as UTF-8 with
    replacement; .raw has the bytes); wait_for consumes them in order. PINGs are answered
    whenever lines are read."""

    def __init__(self, port, nick, user=None, password=None, host='127.0.0.1', timeout=15):
        self.nick = nick
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b''
        self.lines = []  # (bytes, str) not yet consumed
        self.seen = []   # every line, for failure messages
        self._cleanup = register_cleanup(self.close)
        if password:
            self.send('PASS %s' % password)
        self.send('NICK %s' % nick)
        self.send('USER %s 0 * :Ferry e2e peer %s' % (user or 'peer', nick))
        m = self.wait_for(r'^:\S+ (001|433|432|464) |^ERROR ', timeout)
        if not m.group(1) or m.group(1) != '001':
            self.close()
            raise HarnessError('IRC login of %s refused: %s' % (nick, m.string))

    def send(self, line):
        data = line.encode('utf-8') if isinstance(line, str) else line
        self.sock.sendall(data + b'\r\n')

    def privmsg(self, target, text):
        data = text.encode('utf-8') if isinstance(text, str) else text
        self.send(b'PRIVMSG ' + target.encode('utf-8') + b' :' + data)

    def join(self, channel, timeout=10):
        self.send('JOIN %s' % channel)
        return self.wait_for(r'^:%s!\S* JOIN :?%s' % (re.escape(self.nick), re.escape(channel)),
                             timeout)

    def _read(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        if not data:
            raise HarnessError('IRC connection of %s closed; last lines:\n%s' % (
                self.nick, '\n'.join(self.seen[-10:])))
        self._buf += data
        while b'\n' in self._buf:
            raw, self._buf = self._buf.split(b'\n', 1)
            raw = raw.rstrip(b'\r')
            text = raw.decode('utf-8', 'replace')
            self.seen.append(text)
            if raw.startswith(b'PING '):
                self.send(b'PONG ' + raw[5:])
                continue
            self.lines.append((raw, text))

    def wait_for(self, pattern, timeout=10):
        """Consumes lines up to and including the first matching pattern (a regex);
        returns the match. The match object's .raw attribute is not set: use wait_for_raw."""
        return self.wait_for_raw(pattern, timeout)[1]

    def wait_for_raw(self, pattern, timeout=10):
        """Like wait_for, returns (raw bytes of the line, match)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            while self.lines:
                raw, text = self.lines.pop(0)
                m = rx.search(text)
                if m:
                    return raw, m
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError('IRC %s: no line matching %r within %.1f s; last lines:\n%s'
                                   % (self.nick, pattern, timeout, '\n'.join(self.seen[-10:])))
            self._read(left)

    def close(self):
        unregister_cleanup(self._cleanup)
        try:
            self.send('QUIT :bye')
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------- Ferry

class Ferry:
    """build/ferry (FERRY_BINARY) with a private ferry.conf attached to prosody (or, with
    prosody None, to port with secret: a FakeServer).

    overrides: {'group': {'key': 'value' or None to drop the key}} applied over the defaults.
    Defaults make reconnection quick (reconnect_min 0.2 s, reconnect_max 2 s)."""

    def __init__(self, prosody=None, ngircd=None, overrides=None, secret=None, name='ferry',
                 port=None):
        self.binary = binary()
        self.prosody = prosody
        self.dir = private_dir(name)
        self.config = os.path.join(self.dir, 'ferry.conf')
        self.log = os.path.join(self.dir, 'ferry.log')
        self.output = os.path.join(self.dir, 'ferry.out')
        self.secret = secret if secret is not None else prosody.secret
        self.domain = COMPONENT
        port = port or prosody.component_port
        groups = {
            'component': {'jid': self.domain, 'host': '127.0.0.1',
                          'port': str(port), 'secret': self.secret,
                          'reconnect_min': '0.2', 'reconnect_max': '2'},
            'legacy': {'protocol': 'prpl-irc', 'name': 'IRC', 'server': '127.0.0.1',
                       'port': str(ngircd.port if ngircd else free_port())},
            'registration': {'enabled': 'true', 'allowed_domains': DOMAIN},
            'storage': {'path': os.path.join(self.dir, 'data')},
            'log': {'level': 'debug', 'file': self.log},
        }
        for group, keys in (overrides or {}).items():
            for key, value in keys.items():
                if value is None:
                    groups.setdefault(group, {}).pop(key, None)
                else:
                    groups.setdefault(group, {})[key] = str(value)
        self.settings = groups
        with open(self.config, 'w') as f:
            f.write(format_config(groups))
        self.proc = None
        self.started_at = None
        register_cleanup(self.close)

    def start(self, wait=True, timeout=None):
        """Starts the process; with wait, until the component answers disco#info."""
        if not os.access(self.binary, os.X_OK):
            raise HarnessError('no Ferry binary at %s (build it: make build/ferry)' % self.binary)
        self.started_at = time.monotonic()
        wrapper = shlex.split(os.environ.get('FERRY_E2E_WRAPPER', ''))
        self.proc = Process('ferry', wrapper + [self.binary, '-c', self.config], self.output,
                            cwd=self.dir)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=None, client=None):
        """Polls disco#info on the component domain until Ferry (identity category gateway)
        answers: the server delivering to the component is the real sign of a live link."""
        timeout = timeout or scaled(15)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if not self.proc.alive():
                raise HarnessError('ferry exited with status %s before answering:\n%s' % (
                    self.proc.returncode, self.log_tail()))
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError('ferry did not answer disco#info within %.1f s (last reply: '
                                   '%s):\n%s' % (timeout, last, self.log_tail()))
            try:
                c = client or self.prosody.probe()
                reply = c.iq('get', self.domain, '<query xmlns="%s"/>' % NS['info'],
                             timeout=min(2, max(left, 0.1)))
                last = to_string(reply)
                if reply.get('type') == 'result' and reply.find(
                        'info:query/info:identity[@category="gateway"]', NS) is not None:
                    return reply
            except HarnessError as e:
                last = str(e)
            time.sleep(0.1)

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Stops Ferry by its PID; returns its exit status (SIGKILL after timeout; valgrind
        checks for leaks after the last line Ferry runs)."""
        return self.proc.stop(sig, timeout or scaled(10)) if self.proc else None

    def stop_cleanly(self):
        """Stops Ferry with SIGTERM; fails unless it exits 0 (a test class's last check)."""
        rc = self.stop()
        if rc != 0:
            raise AssertionError('ferry exited with %s on SIGTERM:\n%s' % (rc, self.log_tail()))

    def assert_running(self):
        """Fails when Ferry is no longer running (each test's first check)."""
        if not self.alive():
            raise AssertionError('ferry is not running (exit %s):\n%s' % (
                self.proc.returncode if self.proc else None, self.log_tail()))

    def wait_exit(self, timeout):
        """The exit status if Ferry exits within timeout, else None."""
        return self.proc.wait(timeout)

    def log_text(self):
        """The log files (with any renamed ferry.log.N) and stdout/stderr together."""
        parts = []
        rotated = sorted(glob.glob(glob.escape(self.log) + '.*'))
        for path in rotated + [self.log, self.output]:
            try:
                with open(path, encoding='utf-8', errors='replace') as f:
                    parts.append(f.read())
            except OSError:
                pass
        return '\n'.join(parts)

    def log_tail(self, lines=40):
        return '--- %s\n%s\n--- %s\n%s' % (self.log, tail(self.log, lines),
                                           self.output, tail(self.output, 15))

    def wait_log(self, pattern, timeout=None, count=1):
        """Waits until the log holds count matches of pattern (a regex); returns them."""
        timeout = timeout or scaled(10)
        rx = re.compile(pattern)

        def found():
            m = rx.findall(self.log_text())
            return m if len(m) >= count else None
        try:
            return wait_until(found, timeout, 'ferry log line %r x%d' % (pattern, count), 0.1)
        except HarnessError as e:
            raise HarnessError('%s\n%s' % (e, self.log_tail()))

    def assert_secret_not_logged(self):
        text = self.log_text()
        for s in {self.secret, self.prosody.secret if self.prosody else None}:
            if s and s in text:
                raise AssertionError('the component secret appears in Ferry\'s log')

    def close(self):
        self.stop()


def binary():
    # Absolute: Ferry runs with its private directory as working directory.
    return os.path.abspath(os.environ.get('FERRY_BINARY') or os.path.join(REPO, 'build', 'ferry'))


def format_config(groups):
    out = ['# ferry.conf written by tests/e2e/ferrytest.py']
    for group, keys in groups.items():
        out.append('')
        out.append('[%s]' % group)
        for key, value in keys.items():
            out.append('%s = %s' % (key, value))
    return '\n'.join(out) + '\n'


def run_ferry(*args, timeout=15):
    """Runs the binary with args to completion; returns CompletedProcess (text)."""
    try:
        return subprocess.run([binary()] + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, encoding='utf-8', errors='replace')
    except FileNotFoundError:
        raise HarnessError('no Ferry binary at %s' % binary())
    except subprocess.TimeoutExpired:
        raise HarnessError('ferry %s did not exit within %d s' % (' '.join(args), timeout))


# ---------------------------------------------------------------- XEP-0114 by hand

class RawComponent:
    """A minimal XEP-0114 component over a socket (for checking the rig and for playing a
    rival instance). handshake() returns the server's answer: 'ok' or the stream error
    condition."""

    def __init__(self, port, domain=COMPONENT, host='127.0.0.1', timeout=10):
        self.domain = domain
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.data = b''
        self._cleanup = register_cleanup(self.close)

    def _read_until(self, rx, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = rx.search(self.data)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError('component stream: no %r within the deadline; got %r'
                                   % (rx.pattern, self.data[-300:]))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                m = rx.search(self.data)
                if m:
                    return m
                raise HarnessError('component stream closed; got %r' % self.data[-300:])
            self.data += chunk

    def handshake(self, secret):
        self.sock.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept'"
                           " xmlns:stream='http://etherx.jabber.org/streams' to='%s'>"
                           % self.domain).encode())
        m = self._read_until(re.compile(rb"<stream:stream[^>]*\sid=['\"]([^'\"]+)['\"]"))
        digest = hashlib.sha1(m.group(1) + secret.encode()).hexdigest()
        self.sock.sendall(('<handshake>%s</handshake>' % digest).encode())
        m = self._read_until(re.compile(
            rb"<handshake\s*/>|<handshake></handshake>|<stream:error>\s*<([a-z-]+)"))
        return 'ok' if m.group(0).startswith(b'<handshake') else m.group(1).decode()

    def send(self, xml):
        self.sock.sendall(xml.encode('utf-8') if isinstance(xml, str) else xml)

    def wait_for(self, pattern, timeout=5):
        """Reads until the received bytes match pattern (a bytes regex); returns the match."""
        return self._read_until(re.compile(pattern), timeout)

    def close(self):
        unregister_cleanup(self._cleanup)
        try:
            self.sock.sendall(b'</stream:stream>')
        except OSError:
            pass
        self.sock.close()


class FakeServer:
    """The server side of XEP-0114 played by the test, on a free port, for what Prosody cannot
    be made to do: go silent, or refuse connections on purpose. Every connection is recorded
    as a dict: 'at' (monotonic time), 'data' (bytes received), 'digest_ok' (bool or None).

    mode: 'accept' answers the handshake (if the digest is right) and then answers XEP-0199
    pings; 'silent' answers the handshake, then never sends another byte; 'close' closes each
    connection at once."""

    def __init__(self, secret, mode='accept'):
        self.secret = secret
        self.mode = mode
        self.port = free_port()
        self.connections = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(('127.0.0.1', self.port))
        self._listener.listen(16)
        self._socks = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        register_cleanup(self.close)

    def _accept_loop(self):
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            conn = {'at': time.monotonic(), 'data': b'', 'digest_ok': None}
            with self._lock:
                self.connections.append(conn)
                self._socks.append(sock)
            if self.mode == 'close':
                sock.close()
                continue
            threading.Thread(target=self._serve, args=(sock, conn), daemon=True).start()

    def _serve(self, sock, conn):
        sid = secrets.token_hex(8)
        state = 'header'
        sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                conn['data'] += chunk
            data = conn['data']
            try:
                if state == 'header' and re.search(rb'<stream:stream[^>]*>', data):
                    sock.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:component:"
                                  "accept' xmlns:stream='http://etherx.jabber.org/streams' "
                                  "id='%s' from='%s'>" % (sid, COMPONENT)).encode())
                    state = 'handshake'
                if state == 'handshake':
                    m = re.search(rb'<handshake>([0-9a-fA-F]*)</handshake>', data)
                    if m:
                        good = hashlib.sha1((sid + self.secret).encode()).hexdigest()
                        conn['digest_ok'] = m.group(1).decode().lower() == good
                        if not conn['digest_ok']:
                            sock.sendall(b"<stream:error><not-authorized xmlns='urn:ietf:params"
                                         b":xml:ns:xmpp-streams'/></stream:error>"
                                         b"</stream:stream>")
                            sock.close()
                            return
                        sock.sendall(b'<handshake/>')
                        state = 'up'
                        conn['handshake_end'] = len(data)
                if state == 'up' and self.mode == 'accept':
                    self._answer_pings(sock, conn)
            except OSError:
                return

    def _answer_pings(self, sock, conn):
        done = conn.setdefault('answered', set())
        for m in re.finditer(rb"<iq\b[^>]*>\s*<ping xmlns=['\"]urn:xmpp:ping['\"]", conn['data']):
            attrs = dict((k.decode(), v.decode()) for k, v in
                         re.findall(rb"(\w+)=['\"]([^'\"]*)['\"]", m.group(0)))
            if attrs.get('id') in done or attrs.get('type') != 'get':
                continue
            done.add(attrs.get('id'))
            sock.sendall(("<iq type='result' id='%s' from='%s' to='%s'/>" % (
                attrs.get('id'), attrs.get('to', ''), attrs.get('from', ''))).encode())

    def count(self):
        with self._lock:
            return len(self.connections)

    def drop_all(self):
        """Closes every open connection (the server 'goes away'); later ones follow mode."""
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def wait_count(self, n, timeout):
        return wait_until(lambda: self.count() >= n, timeout,
                          '%d connection(s) to the fake server' % n)

    def close(self):
        self._stop.set()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        self._listener.close()
        self._thread.join(2)


# ---------------------------------------------------------------- XMPP client (slixmpp)

def _quiet_slixmpp():
    level = logging.DEBUG if os.environ.get('FERRY_E2E_DEBUG') else logging.CRITICAL
    logging.getLogger('slixmpp').setLevel(level)
    if level == logging.DEBUG:
        logging.basicConfig(level=logging.DEBUG)


_ids = itertools.count(1)
STREAMS_NS = 'http://etherx.jabber.org/streams'


class XmppClient:
    """A logged-in XMPP client with a synchronous API. slixmpp only connects, authenticates
    and binds; stanzas are sent as raw XML and every stanza (and stream error) received is
    kept as an ElementTree element (a copy) in .received."""

    def __init__(self, jid, password, port, host='127.0.0.1', timeout=10):
        _quiet_slixmpp()
        import slixmpp  # deferred so that tests without XMPP do not need it
        self.requested_jid = jid
        self.received = []
        self._consumed = set()
        self._cond = threading.Condition()
        self.connected = False
        self._failure = None
        self._session = threading.Event()
        self._gone = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name='xmpp-' + jid, daemon=True)
        self._thread.start()
        self._cleanup = register_cleanup(self.disconnect)
        try:
            self._call(self._make, slixmpp, jid, password, host, port)
            if not self._session.wait(timeout) or self._failure:
                reason = self._failure or 'no session within %.1f s' % timeout
                raise HarnessError('XMPP login of %s failed: %s' % (jid, reason))
        except BaseException:
            self.disconnect()
            raise
        self.jid = str(self.xmpp.boundjid)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, fn, *args, timeout=10):
        """Runs fn(*args) on the loop thread and returns its result."""
        async def wrap():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def _make(self, slixmpp, jid, password, host, port):
        x = slixmpp.ClientXMPP(jid, password)
        x._always_send_everything = True  # RIG.md: else IQs before the session are held back
        x.add_filter('in', self._record)
        x.add_event_handler('session_start', self._on_session)
        x.add_event_handler('failed_auth', lambda *_: self._fail('authentication failed'))
        x.add_event_handler('connection_failed', lambda e: self._fail('connection failed: %s' % e))
        x.add_event_handler('disconnected', self._on_disconnected)
        self.xmpp = x
        x.connect(address=(host, port), disable_starttls=True, force_starttls=False)

    def _fail(self, reason):
        self._failure = reason
        self.xmpp.cancel_connection_attempt()  # no slixmpp retry loop behind our back
        self._session.set()

    def _on_session(self, _event):
        self.connected = True
        self._session.set()

    def _on_disconnected(self, _reason):
        self.connected = False
        self._gone.set()
        with self._cond:
            self._cond.notify_all()
        if not self._session.is_set():
            self._fail('disconnected before the session started')

    def _record(self, stanza):
        if not stanza.xml.tag.startswith(('{jabber:client}', '{%s}error' % STREAMS_NS)):
            return stanza  # SASL and stream features: not the tests' business
        el = copy.deepcopy(stanza.xml)
        with self._cond:
            self.received.append(el)
            self._cond.notify_all()
        return stanza

    # -- sending

    def send(self, xml):
        """Sends raw XML (a str) on the stream."""
        if not self.connected:
            raise HarnessError('%s: not connected' % self.requested_jid)
        self.loop.call_soon_threadsafe(self._send_raw, xml)

    def _send_raw(self, xml):
        try:
            self.xmpp.send_raw(xml)
        except Exception as e:  # the stream may have gone between the check and now
            logging.getLogger('ferrytest').debug('send_raw: %s', e)

    def iq(self, type_, to, payload='', timeout=5, id_=None, extra_attrs=''):
        """Sends an IQ (payload is raw XML) and returns the reply element (result or error).
        Raises HarnessError when nothing comes back within timeout."""
        id_ = id_ or 'e2e%d' % next(_ids)
        attrs = " to='%s'" % xml_escape(to) if to else ''
        self.send("<iq type='%s' id='%s'%s%s>%s</iq>" % (type_, id_, attrs, extra_attrs, payload))
        return self.wait_for(lambda el: el.tag == '{jabber:client}iq' and el.get('id') == id_
                             and el.get('type') in ('result', 'error'), timeout,
                             'reply to iq %s %s to %s' % (type_, payload[:80], to))

    def message(self, to, body=None, type_='chat', payload='', id_=None):
        id_ = id_ or 'm%d' % next(_ids)
        body_xml = '<body>%s</body>' % xml_escape(body) if body is not None else ''
        self.send("<message to='%s' type='%s' id='%s'>%s%s</message>"
                  % (xml_escape(to), type_, id_, body_xml, payload))
        return id_

    def presence(self, to=None, type_=None, payload=''):
        attrs = (" to='%s'" % xml_escape(to) if to else '') + (
            " type='%s'" % type_ if type_ else '')
        self.send('<presence%s>%s</presence>' % (attrs, payload))

    # -- receiving

    def wait_for(self, predicate, timeout=5, what='a matching stanza'):
        """Returns (and consumes) the first received stanza, not yet consumed, for which
        predicate(element) is true; raises HarnessError after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, el in enumerate(self.received):
                    if i not in self._consumed and predicate(el):
                        self._consumed.add(i)
                        return el
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not self.connected and self._gone.is_set():
                    raise HarnessError('%s: disconnected while waiting for %s' % (
                        self.requested_jid, what))
                self._cond.wait(min(left, 0.5))
        recent = [to_string(e)[:300] for i, e in enumerate(self.received)
                  if i not in self._consumed][-5:]
        raise HarnessError('%s: no %s within %.1f s; unconsumed: %s' % (
            self.requested_jid, what, timeout, recent))

    def pending(self):
        """Stanzas received and not consumed yet."""
        with self._cond:
            return [el for i, el in enumerate(self.received) if i not in self._consumed]

    def disconnect(self, timeout=5):
        unregister_cleanup(self._cleanup)
        if not self._thread.is_alive():
            return
        x = getattr(self, 'xmpp', None)
        if x is not None:
            try:
                if self.connected:
                    self.loop.call_soon_threadsafe(x.disconnect, 1.0)
                    self._gone.wait(timeout)
                self.loop.call_soon_threadsafe(x.abort)
            except RuntimeError:
                pass
        self.connected = False

        async def stop():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop)
        except RuntimeError:
            pass
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


# ---------------------------------------------------------------- XML helpers for tests

def xml_escape(s):
    return (s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace("'", '&apos;').replace('"', '&quot;'))


def to_string(el):
    return ET.tostring(el, encoding='unicode')


def local(el):
    """(namespace, local name) of an element."""
    m = re.match(r'^\{([^}]*)\}(.*)$', el.tag)
    return (m.group(1), m.group(2)) if m else ('', el.tag)


def error_of(stanza):
    """(type, condition, text or None) of a stanza's <error/>, or None."""
    err = stanza.find('c:error', NS)
    if err is None:
        return None
    cond, text = None, None
    for child in err:
        ns, name = local(child)
        if ns == NS['stanzas']:
            if name == 'text':
                text = child.text
            else:
                cond = name
    return err.get('type'), cond, text
