#!/usr/bin/python3
"""Runs Ferry's end-to-end tests (stdlib unittest; see ferrytest.py for the fixtures).

    /usr/bin/python3 tests/e2e/run.py                  every tests/e2e/test_*.py
    /usr/bin/python3 tests/e2e/run.py test_service     one module (or Module.Class[.test])

Environment: FERRY_BINARY (default: build/ferry of this checkout), FERRY_RESULTS (a file that
gets one "PASS e2e/<module>.<Class>.<test>" or "FAIL ..." line per test), FERRY_E2E_TIMEOUT
(seconds one test may take, default 90), FERRY_E2E_KEEP=1 (keep the temporary directories).
Anything but a pass (failure, error, skip, a class or module fixture that failed) counts as a
failure. Exit status 0 only when at least one test ran and every test passed.
"""

import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ferrytest  # noqa: E402


class TestTimeout(AssertionError):
    pass


def _alarm(signum, frame):
    raise TestTimeout('test took longer than FERRY_E2E_TIMEOUT')


class RecordingResult(unittest.TextTestResult):
    """Writes one PASS/FAIL line per test to FERRY_RESULTS as soon as it is known."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = 0
        self.failed = 0
        self._bad = set()  # test ids that failed already (a test may fail in tearDown too)
        self.results = os.environ.get('FERRY_RESULTS')
        self.limit = float(os.environ.get('FERRY_E2E_TIMEOUT', '90'))
        self.class_tests = {}  # 'module.Class' -> test ids, for fixture failures

    def _record(self, status, name):
        if self.results:
            with open(self.results, 'a') as f:
                f.write('%s e2e/%s\n' % (status, name))

    def startTest(self, test):
        self._started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self.limit)
        super().startTest(test)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)
        if self.showAll:
            self.stream.writeln('    (%.1f s)' % (time.monotonic() - self._started))
        if test.id() not in self._bad:
            self.passed += 1
            self._record('PASS', test.id())

    def _fail(self, test):
        if isinstance(test, unittest.TestCase):
            if test.id() not in self._bad:
                self._bad.add(test.id())
                self.failed += 1
                self._record('FAIL', test.id())
            return
        # A setUpClass/setUpModule (or tearDown*) failure: name every test it cost.
        desc = str(test)  # e.g. "setUpClass (test_service.ServiceTest)"
        scope = desc[desc.find('(') + 1:desc.rfind(')')] if '(' in desc else desc
        ids = [t for key, tests in self.class_tests.items()
               if key == scope or key.startswith(scope + '.') for t in tests]
        if desc.startswith('tearDown'):  # its tests ran and were recorded already
            ids = []
        for tid in ids or [scope + '.' + desc.split(' ')[0]]:
            if tid not in self._bad:
                self._bad.add(tid)
                self.failed += 1
                self._record('FAIL', tid)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.errors.append((test, 'skipped (a skip counts as a failure): %s' % reason))
        self._fail(test)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._fail(test)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(test)


def iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def main(argv):
    names = [a for a in argv if not a.startswith('-')]
    verbosity = 1 if '-q' in argv else 2
    if '-h' in argv or '--help' in argv:
        print(__doc__)
        return 0
    ferrytest.install_signal_cleanup()
    signal.signal(signal.SIGALRM, _alarm)
    loader = unittest.TestLoader()
    try:
        if names:
            suite = loader.loadTestsFromNames(names)
        else:
            suite = loader.discover(HERE, pattern='test_*.py', top_level_dir=HERE)
    except Exception as e:
        print('e2e: cannot load tests: %s' % e)
        print('e2e: 0 passed, 1 failed')
        return 1
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=verbosity,
                                     resultclass=RecordingResult)
    # Import failures show up as unittest.loader._FailedTest cases: they fail like any test.
    class_tests = {}
    for t in iter_tests(suite):
        key = '%s.%s' % (type(t).__module__, type(t).__name__)
        class_tests.setdefault(key, []).append(t.id())
    print('e2e: binary %s' % ferrytest.binary())
    started = time.monotonic()

    orig = runner._makeResult

    def make():
        r = orig()
        r.class_tests = class_tests
        return r
    runner._makeResult = make
    result = runner.run(suite)
    ferrytest.cleanup_all()
    print('e2e: %.0f s' % (time.monotonic() - started))
    print('e2e: %d passed, %d failed' % (result.passed, result.failed))
    return 0 if result.failed == 0 and result.passed > 0 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
