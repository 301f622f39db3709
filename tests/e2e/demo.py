#!/usr/bin/python3
"""make demo: Ferry for real, on loopback, with the end-to-end tests' fixtures.

    /usr/bin/python3 tests/e2e/demo.py BUILD/ferry

Starts a private Prosody (domain localhost, users alice and bob with fresh passwords, the
component irc.localhost), a private ngircd and Ferry, registers nothing, prints what to type in
an XMPP client and in a raw IRC client, and waits. Ctrl-C (or SIGTERM) stops everything it
started, by PID, and removes the temporary directories. Ports 5222 (XMPP) and 6667 (IRC) are
used when free, other free loopback ports otherwise."""

import os
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ferrytest as ft  # noqa: E402


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(('127.0.0.1', port))
            return True
        except OSError:
            return False


class preferred_port:
    """Within the block, the fixtures' next free_port() is `port` when that one is free."""

    def __init__(self, port):
        self.port = port

    def __enter__(self):
        self.saved = ft.free_port
        wanted = [self.port] if port_free(self.port) else []

        def pick():
            return wanted.pop() if wanted else self.saved()
        ft.free_port = pick

    def __exit__(self, *exc):
        ft.free_port = self.saved


def start():
    with preferred_port(5222):
        prosody = ft.Prosody()
    prosody.start()
    users = [prosody.register(name) for name in ('alice', 'bob')]
    with preferred_port(6667):
        ngircd = ft.Ngircd()
    ngircd.start()
    ferry = ft.Ferry(prosody, ngircd, overrides={'log': {'level': 'info'}})
    ferry.start()
    return prosody, ngircd, ferry, users


INSTRUCTIONS = '''
Ferry demo is running on loopback. Ctrl-C stops everything.

XMPP server   127.0.0.1 port {c2s}, domain {domain} (no TLS: allow plain passwords)
  {u0:<22} password {p0}
  {u1:<22} password {p1}
IRC server    127.0.0.1 port {irc} (ngircd, no server password)
Gateway       {component} (Ferry; log: {log})

1. Log in as alice with any XMPP client, e.g.
     profanity: /account add alice
                /account set alice jid alice@{domain}
                /account set alice server 127.0.0.1
                /account set alice port {c2s}
                /account set alice tls disable
                /connect alice          (then type the password)
     mcabber, Gajim: server 127.0.0.1, port {c2s}, no TLS, plain password allowed.

2. Register with the gateway: in Gajim, Accounts > Discover Services > {component} >
   Register (user name: the IRC nick you want, e.g. alice; password: empty). From any client
   with an XML console, send:
     <iq type='set' to='{component}' id='reg1'><query xmlns='jabber:iq:register'>
       <username>alice</username><password/></query></iq>
   Accept the gateway's subscription request: it logs you in to IRC as alice.

3. In a terminal, be an IRC user (answer the server's "PING :x" with "PONG :x"):
     nc 127.0.0.1 {irc}
     NICK pia
     USER pia 0 * :Pia
     PRIVMSG alice :hello from IRC

4. In the XMPP client, the message comes from pia@{component}; answer it, or add
   pia@{component} to the roster to see pia's presence. IRC nicks with characters a JID
   cannot hold are escaped (XEP-0106): "a b" is a\\20b@{component}.
'''


def main():
    if len(sys.argv) != 2:
        print('usage: demo.py PATH/TO/ferry', file=sys.stderr)
        return 2
    os.environ['FERRY_BINARY'] = os.path.abspath(sys.argv[1])
    ft.install_signal_cleanup()  # SIGTERM, SIGHUP: stop everything and exit
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: the finally below
    try:
        return run()
    except KeyboardInterrupt:
        return 0
    except ft.HarnessError as e:
        print('demo: %s' % e, file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print('demo: stopping everything', flush=True)
        ft.cleanup_all()


def run():
    prosody, ngircd, ferry, users = start()
    print(INSTRUCTIONS.format(c2s=prosody.c2s_port, domain=prosody.domain, irc=ngircd.port,
                              component=ferry.domain, log=ferry.log, u0=users[0][0],
                              p0=users[0][1], u1=users[1][0], p1=users[1][1]), flush=True)
    while True:
        for name, proc in (('prosody', prosody.proc), ('ngircd', ngircd.proc),
                           ('ferry', ferry.proc)):
            if not proc.alive():
                print('demo: %s exited with status %s' % (name, proc.returncode))
                if name == 'ferry':
                    print(ferry.log_tail())
                return 1
        time.sleep(0.5)


if __name__ == '__main__':
    sys.exit(main())
