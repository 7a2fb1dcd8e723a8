"""Worker processes the speed benchmarks drive one JSON request line at a time (onnxruntime without TensorFlow,
Node): each answers one stdout line that starts with ``REPLY``; anything else it prints passes through."""

from __future__ import annotations

import json
import os
import subprocess

REPLY = "@@"  # marks the workers' replies on their stdout


def reply(answer: dict) -> None:
    """Answers the driving process (in a worker)."""
    print(REPLY + json.dumps(answer), flush=True)


class Worker:
    """A worker process, driven one request line at a time.

    Args:
        command: The worker's argv.
        cwd: Its working folder (default: this one).
        hello: Whether it answers once on start-up (kept as ``self.hello``).
    """

    def __init__(self, command: list, cwd: str | None = None, hello: bool = False):
        self.process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        self.hello = self._read() if hello else None

    def _read(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        raise SystemExit(f"worker {self.process.args[:3]} stopped; see its messages above")

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)
