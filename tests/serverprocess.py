"""`python scim_server.py` as a real subprocess, for tests that talk over a socket."""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def clean_environment():
    """This environment without SCIM_* settings, so only the flags given count."""
    return {key: value for key, value in os.environ.items() if not key.startswith('SCIM_')}


def run_server(*args, cwd=ROOT, env=None):
    """Start `python scim_server.py *args`; its output (stdout and stderr) is collected."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / 'scim_server.py'), *args], cwd=cwd,
        env=env if env is not None else clean_environment(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding='utf-8')


class ServerProcess:
    """A running server on a free port (`--port 0`), read from its start-up banner."""

    def __init__(self, *extra, database, token, timeout=20):
        self._start(run_server('--port', '0', '--database', database, '--token', token, *extra), timeout)

    @classmethod
    def attach(cls, process, timeout=20):
        """Wait for an already started `run_server(...)` process to listen."""
        server = cls.__new__(cls)
        server._start(process, timeout)
        return server

    def _start(self, process, timeout):
        self.process = process
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r'SCIM base URL:\s+http://127\.0\.0\.1:(\d+)/', self.output)
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f'the server did not start:\n{self.output}')

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return ''.join(self.lines)

    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}'

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
