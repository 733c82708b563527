"""Runs one shard of the system tests: the modules test_*.py here, in name order, dealt round-robin
into COUNT shards, so that each shard (a meson test of its own) stays well inside its timeout.
    /usr/bin/python3 tests/system/run_shard.py INDEX COUNT        (INDEX from 1)"""
import os
import sys
import time
import unittest


class TimedResult(unittest.TextTestResult):
    """Each test's time after its verdict: what the shards are balanced by."""

    def startTest(self, test):
        self.started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.stream.writeln(f"    ({time.monotonic() - self.started:.1f} s)")
        self.stream.flush()


def main():
    index, count = int(sys.argv[1]), int(sys.argv[2])
    here = os.path.dirname(os.path.abspath(__file__))
    names = sorted(f[:-3] for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    mine = names[index - 1::count]
    sys.path.insert(0, here)
    suite = unittest.defaultTestLoader.loadTestsFromNames(mine)
    print(f"system shard {index} of {count}: {', '.join(mine)}", flush=True)
    result = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
