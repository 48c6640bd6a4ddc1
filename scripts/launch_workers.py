"""Run one `aqi` command on N local workers (MultiWorkerMirroredStrategy over 127.0.0.1).

Usage: launch_workers.py N [--timeout S] -- AQI_ARGS...
  e.g. launch_workers.py 2 -- --data-dir data train --station Aotizhongxin -q
Each worker gets a free port and its own TF_CONFIG (worker i of N); worker 0 is the chief and alone
writes the model. If a worker fails or the timeout passes (default 3600 s), every worker is killed:
a worker whose peer is gone would otherwise wait forever. Exit code: the first non-zero one, else 0.
On Slurm or Kubernetes, build the same TF_CONFIG from the scheduler instead (README, "Launch").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def main(argv: list[str]) -> int:
    if "--" not in argv or not argv[0].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    n, rest = int(argv[0]), argv[argv.index("--") + 1 :]
    timeout = (
        float(argv[argv.index("--timeout") + 1]) if "--timeout" in argv[: argv.index("--")] else 3600
    )
    ports = free_ports(n)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aqi", *rest], env={**os.environ, "TF_CONFIG": tf_config(ports, i)}
        )
        for i in range(n)
    ]
    deadline, code = time.monotonic() + timeout, 0
    while any(p.poll() is None for p in procs):
        failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
        if failed or time.monotonic() > deadline:
            code = failed[0] if failed else 124
            for p in procs:
                p.kill()
            break
        time.sleep(0.2)
    return code or next((p.returncode for p in procs if p.returncode), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
