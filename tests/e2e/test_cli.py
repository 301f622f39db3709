"""Ferry's command line (issue 2's operator contract): --version, --help, an unknown option,
--check on a good and on a broken configuration. No server is started."""

import os
import re
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


if __name__ == '__main__':
    unittest.main()
