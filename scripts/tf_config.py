"""Print the TF_CONFIG of this worker, built from the scheduler's variables.

Slurm (one task per worker): rank SLURM_PROCID of SLURM_NTASKS. Kubernetes indexed Job: rank
JOB_COMPLETION_INDEX. Hosts: AQI_HOSTS, comma-separated, one per rank (on Slurm: `scontrol show
hostnames "$SLURM_JOB_NODELIST" | paste -sd,`; on Kubernetes: the pods' stable names behind a
headless Service, e.g. aqi-0.aqi,aqi-1.aqi). Port: AQI_PORT (default 23456), plus the rank where
a host appears more than once (several workers on one node).

  export TF_CONFIG="$(python scripts/tf_config.py)" && aqi train --station all -q
"""

from __future__ import annotations

import json
import os
import sys


def tf_config(env: dict[str, str]) -> dict:
    hosts = [h for h in env.get("AQI_HOSTS", "").split(",") if h]
    rank = env.get("SLURM_PROCID", env.get("JOB_COMPLETION_INDEX"))
    if not hosts or rank is None:
        raise SystemExit("tf_config: set AQI_HOSTS and SLURM_PROCID or JOB_COMPLETION_INDEX")
    if "SLURM_NTASKS" in env and int(env["SLURM_NTASKS"]) != len(hosts):
        raise SystemExit(f"tf_config: {len(hosts)} hosts in AQI_HOSTS for {env['SLURM_NTASKS']} tasks")
    port = int(env.get("AQI_PORT", "23456"))
    shared = len(set(hosts)) < len(hosts)
    workers = [f"{h}:{port + i if shared else port}" for i, h in enumerate(hosts)]
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": int(rank)}}


if __name__ == "__main__":
    print(json.dumps(tf_config(dict(os.environ))))
    sys.exit(0)
