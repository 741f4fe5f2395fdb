"""A command that drives Ray (``--executor ray``) runs as a child of the ``fairlin`` process the user started.

A Ray driver shares the fate of the Ray processes it talks to: when its raylet, object store or GCS dies, Ray's
C++ core ends the driver at once (exit code 1, no Python cleanup) after printing its own log lines. So the
process the user started only supervises: it runs the same command line in a child (the Ray driver), forwards
the child's output, and when the child ends that way prints one line and exits 2. The runs the child left queued
or running then read ``interrupted`` (their process is gone) and the same command resumes them.

In the child, file descriptors 1 and 2 (where Ray's C++ core writes) go to a log file, Ray's Python logger writes
there too, and Ray's echo of its processes' messages on the driver is off (they stay in Ray's session logs); the
command's own output (sys.stdout, sys.stderr) goes to two pipes the parent forwards. The log is deleted unless
the child died, and the child dies with its parent (Linux), so a killed ``fairlin`` leaves no driver behind.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from importlib import import_module
from pathlib import Path
from typing import TextIO

from ..errors import FairLinError
from ..jobs.ray_executor import import_ray

STREAMS_ENV = "FAIRLIN_RAY_DRIVER_STREAMS"  # in the child: "STDOUT_FD,STDERR_FD,PARENT_PID"
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding this fairlin_core: the child runs it
CHILD = "import sys; sys.path.insert(0, sys.argv.pop(1)); from fairlin_core.cli import main; sys.exit(main())"
REPORTED = (0, 2, 130)  # exit codes of a child that told its outcome itself (done, one error line, interrupted)
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def supervised(argv: list[str]) -> int | None:
    """Run ``fairlin ARGV`` (a command with ``--executor ray``) as a supervised Ray driver child and return its
    exit code; None in that child, which then runs the command itself. FairLinError (one line) when the child
    died before it could report (see the module docstring), or when Ray is not installed."""
    streams = os.environ.pop(STREAMS_ENV, None)  # the Ray processes this child starts must not inherit it
    if streams is not None:
        _adopt(*(int(part) for part in streams.split(",")))
        return None
    import_ray()  # without Ray: the install command, from this process
    return _supervise(argv)


def _adopt(stdout_fd: int, stderr_fd: int, parent: int) -> None:
    """In the child: the command's output to the parent's pipes, Ray's to the log (fds 1 and 2); die with the parent."""
    log = sys.stderr
    sys.stdout, sys.stderr = (open(fd, "w", encoding="utf-8", errors="backslashreplace", buffering=1)
                              for fd in (stdout_fd, stderr_fd))
    _die_with(parent)
    import_ray()
    logging.getLogger("ray").handlers = [logging.StreamHandler(log)]
    import_module("ray._private.worker")._worker_logs_enabled = False  # its processes' messages, on sys.stdout


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent ends, as a killed driver would be (Linux only; at once if it already
    ended)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _supervise(argv: list[str]) -> int:
    handle, name = tempfile.mkstemp(prefix="fairlin-ray-driver-", suffix=".log")
    log = Path(name)
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    env = {**os.environ, STREAMS_ENV: f"{stdout_w},{stderr_w},{os.getpid()}"}
    try:  # a session of its own: Ctrl-C reaches the child once, forwarded by _wait
        child = subprocess.Popen([sys.executable, "-c", CHILD, PACKAGE_ROOT, *argv], stdin=subprocess.DEVNULL,
                                 stdout=handle, stderr=handle, pass_fds=(stdout_w, stderr_w), env=env,
                                 start_new_session=True)
    finally:
        for fd in (handle, stdout_w, stderr_w):
            os.close(fd)
    pumps = [_Pump(stdout_r, sys.stdout), _Pump(stderr_r, sys.stderr)]
    code = _wait(child)
    for pump in pumps:
        pump.join(timeout=10)  # the pipes close with the child (a process it left holding one cannot block us)
    if code in REPORTED:
        log.unlink()
        return code
    if not pumps[1].tail.endswith("\n"):  # a progress bar was being drawn: the line starts over
        sys.stderr.write("\r\x1b[2K" if sys.stderr.isatty() else "\r")
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    raise FairLinError(f"the Ray driver process of this command (pid {child.pid}) stopped before it finished "
                       f"({how}): a Ray process it depends on (raylet, object store, GCS) died or was killed, or "
                       f"memory ran out. Finished work is kept (runs it left unfinished read interrupted); run the "
                       f"same command again to resume (Ray's messages: {log})")


def _wait(child: subprocess.Popen) -> int:
    """The child's exit code; Ctrl-C here is passed on to it (it stops as a command does on Ctrl-C)."""
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)


class _Pump(threading.Thread):
    """Copies a pipe from the child to ``stream`` as it comes (UTF-8); ``tail``: the last text copied. Started
    at once; it ends when the child's end of the pipe closes."""

    def __init__(self, fd: int, stream: TextIO) -> None:
        super().__init__(name="fairlin-ray-driver-output", daemon=True)
        self.fd, self.stream, self.tail = fd, stream, ""
        self.start()

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with open(self.fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                text = decoder.decode(chunk)
                try:
                    self.stream.write(text)
                    self.stream.flush()
                except BrokenPipeError:  # nobody reads any more (`| head`): the child's next write fails alike
                    return
                self.tail = text or self.tail
