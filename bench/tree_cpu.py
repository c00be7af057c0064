"""Run a command and stay until every process it started has ended, so that the CPU
of the whole tree is counted: a Linux child subreaper (prctl PR_SET_CHILD_SUBREAPER)
adopts the orphans (a fork server and the workers it forked outlive nothing, but their
parent is not the command), reaps them, and so their CPU reaches this process's
children's usage, which wait4 on this process reports.

    python bench/tree_cpu.py COMMAND [ARGS...]

Exits with the command's exit code.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    code = subprocess.call(sys.argv[1:])
    while True:  # the adopted orphans, until none is left
        try:
            os.wait()
        except ChildProcessError:
            return code


if __name__ == "__main__":
    sys.exit(main())
