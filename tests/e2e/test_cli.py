"""Ferry's command line (issue 2's operator contract): --version, --help, an unknown option,
--check on a good and on a broken configuration, including [legacy] checked against what
libpurple declares (issue 4), and a start with a bad [legacy] leaving nothing behind. No
server is started."""

import os
import re
import subprocess
import unittest

import ferrytest as ft


def makefile_version():
    with open(os.path.join(ft.REPO, 'Makefile')) as f:
        m = re.search(r'^VERSION\s*:?=\s*(\S+)', f.read(), re.M)
    return m.group(1) if m else None


class CliTest(unittest.TestCase):
    def write(self, text):
        d = ft.private_dir('cli')
        path = os.path.join(d, 'ferry.conf')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def good_config(self):
        p = ft.Prosody()  # writes its config only: the secret and ports for ferry.conf
        self.addCleanup(p.close)
        f = ft.Ferry(p)
        self.addCleanup(f.close)
        return f.config

    def test_version(self):
        r = ft.run_ferry('--version')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(makefile_version(), r.stdout)
        self.assertRegex(r.stdout, r'(?i)ferry')

    def test_help(self):
        r = ft.run_ferry('--help')
        self.assertEqual(r.returncode, 0, r.stderr)
        for option in ('-c', '--check', '--version', '--help'):
            self.assertIn(option, r.stdout)

    def test_unknown_option_exits_2_with_usage(self):
        for args in (['--bogus'], ['-Z'], ['--check', '-c', '/nonexistent', '--frobnicate']):
            with self.subTest(args=args):
                r = ft.run_ferry(*args)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertRegex(r.stderr, r'(?i)usage')

    def test_check_good_config(self):
        r = ft.run_ferry('--check', '-c', self.good_config())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_broken_config_lists_every_problem(self):
        path = self.write('''[component]
jid = irc.localhost
port = notaport
colour = blue
keepalive_interval = soon
reconnect_min = -3

[legacy]
protocol = prpl-irc
server = 127.0.0.1

[log]
level = loud

[nosuchgroup]
x = 1
''')
        r = ft.run_ferry('--check', '-c', path)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        for problem in ('[component] secret', '[component] port', '[component] colour',
                        '[component] reconnect_min', '[component] keepalive_interval',
                        '[log] level', '[nosuchgroup]'):
            self.assertIn(problem, out)

    def test_check_secret_never_echoed(self):
        secret = 'do-not-echo-' + os.urandom(4).hex()
        path = self.write('''[component]
jid = irc.localhost
secret = %s
port = %s

[legacy]
protocol = prpl-irc
server = 127.0.0.1
''' % (secret, secret))
        r = ft.run_ferry('--check', '-c', path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('[component] port', r.stdout + r.stderr)
        self.assertNotIn(secret, r.stdout + r.stderr)

    def test_check_missing_file_exits_1(self):
        path = os.path.join(ft.private_dir('cli'), 'absent.conf')
        r = ft.run_ferry('--check', '-c', path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('absent.conf', r.stdout + r.stderr)


# What libpurple 2.14's prpl-irc declares (RIG.md): the messages must name them all.
IRC_OPTIONS = ('port', 'encoding', 'autodetect_utf8', 'username', 'realname', 'ssl', 'sasl',
               'saslname', 'auth_plain_in_clear', 'ratelimit-interval', 'ratelimit-burst')


class LegacyCheckTest(unittest.TestCase):
    """--check validates [legacy] against libpurple without touching [storage] path; a start
    with a bad [legacy] exits 1 before the data directory gets a key file or a database."""

    def ferry(self, legacy):
        f = ft.Ferry(None, secret='cli-secret-' + os.urandom(4).hex(), port=ft.free_port(),
                     overrides={'legacy': legacy}, name='cli-legacy')
        self.addCleanup(f.close)
        return f

    def check(self, legacy):
        """Runs --check with TMPDIR private; returns (exit status, output, the Ferry)."""
        f = self.ferry(legacy)
        tmp = ft.private_dir('cli-tmp')
        env = dict(os.environ, TMPDIR=tmp)
        r = subprocess.run([ft.binary(), '--check', '-c', f.config], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, encoding='utf-8',
                           errors='replace')
        out = r.stdout + r.stderr
        # libpurple ran in a temporary directory that is gone, and [storage] was not touched.
        self.assertEqual(os.listdir(tmp), [], out)
        self.assertFalse(os.path.exists(f.settings['storage']['path']), out)
        self.assertNotIn(f.secret, out)
        return r.returncode, out, f

    def problem_lines(self, out, f):
        return [line for line in out.splitlines() if line.startswith('ferry: %s: [legacy] ' %
                                                                      f.config)]

    def test_unknown_option_names_the_valid_ones(self):
        rc, out, f = self.check({'bogus_opt': '1', 'nickserv': 'x', 'realname': 'Ferry'})
        self.assertEqual(rc, 1, out)
        lines = self.problem_lines(out, f)
        self.assertEqual(len(lines), 2, out)
        for key, line in zip(('bogus_opt', 'nickserv'), lines):
            self.assertIn('[legacy] %s: not an option of prpl-irc; valid: ' % key, line)
            for option in IRC_OPTIONS:
                self.assertIn(option, line.split('valid: ', 1)[1])
        self.assertNotIn('[legacy] realname', out)
        self.assertNotIn('the configuration is valid', out)

    def test_unknown_protocol_names_the_available_ones(self):
        rc, out, f = self.check({'protocol': 'prpl-nosuch'})
        self.assertEqual(rc, 1, out)
        lines = self.problem_lines(out, f)
        self.assertEqual(len(lines), 1, out)
        self.assertIn("[legacy] protocol: unknown protocol 'prpl-nosuch'; available: ", lines[0])
        for protocol in ('prpl-irc', 'prpl-jabber', 'prpl-simple'):
            self.assertIn(protocol, lines[0])

    def test_wrongly_typed_values(self):
        rc, out, f = self.check({'ssl': 'maybe', 'ratelimit-burst': 'lots',
                                 'autodetect_utf8': 'yes'})
        self.assertEqual(rc, 1, out)
        lines = self.problem_lines(out, f)
        self.assertEqual(sorted(lines), sorted([
            "ferry: %s: [legacy] ssl: 'maybe' is not a boolean (true/false)" % f.config,
            "ferry: %s: [legacy] ratelimit-burst: 'lots' is not an integer" % f.config,
        ]), out)

    def test_good_options_pass(self):
        rc, out, f = self.check({'ssl': 'false', 'encoding': 'UTF-8', 'ratelimit-burst': '5'})
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.problem_lines(out, f), [], out)
        self.assertIn('the configuration is valid', out)

    def test_file_problems_come_first_and_alone(self):
        # A file that does not load is not checked against libpurple: its own problems only.
        path = os.path.join(ft.private_dir('cli'), 'ferry.conf')
        with open(path, 'w') as conf:
            conf.write('[component]\njid = irc.localhost\n\n[legacy]\nprotocol = prpl-irc\n'
                       'server = 127.0.0.1\nbogus_opt = 1\n')
        r = ft.run_ferry('--check', '-c', path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('[component] secret', r.stderr)
        self.assertNotIn('bogus_opt', r.stderr)

    def test_start_with_unknown_option_leaves_nothing(self):
        f = self.ferry({'bogus_opt': '1'})
        f.start(wait=False)
        self.assertEqual(f.wait_exit(20), 1, f.log_tail())
        self.assertRegex(f.log_text(), r'\[legacy\] bogus_opt: not an option of prpl-irc; '
                                       r'valid: .*encoding')
        data = f.settings['storage']['path']
        self.assertFalse(os.path.exists(os.path.join(data, 'ferry.key')), f.log_tail())
        self.assertFalse(os.path.exists(data), os.listdir(data) if os.path.isdir(data) else '')

    def test_start_with_unknown_option_in_existing_dir(self):
        f = self.ferry({'ssl': 'maybe'})
        data = f.settings['storage']['path']
        os.mkdir(data, 0o700)
        f.start(wait=False)
        self.assertEqual(f.wait_exit(20), 1, f.log_tail())
        self.assertIn("[legacy] ssl: 'maybe' is not a boolean", f.log_text())
        self.assertEqual(os.listdir(data), [])


if __name__ == '__main__':
    unittest.main()
