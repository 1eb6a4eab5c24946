"""``python -m bench.launch LOG TIMEOUT ARGV...``: run ARGV alone and print its time, CPU time and peak RSS as JSON.

The suite's own process grows (rendered pages, results) and Linux hands a child the high-water
mark of the memory it execs from: ``ru_maxrss`` of a contender started by the suite was never below
the suite's peak (432 MB at 2M records, whatever the contender). This small process is what each
contender execs from, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time


def main(log: str, timeout: float, argv: list[str]) -> dict[str, float]:
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, lambda: os.kill(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # the suite stopped this launcher: no contender outlives it
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime  # every thread's; above the wall time when cores work together
    return {"seconds": seconds, "cpu_s": cpu, "rss_kb": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # the contender goes too
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]), sys.argv[3:])))
