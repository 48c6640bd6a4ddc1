"""The CPU budget of one aqi process: how many cores it may use, and holding every library to it.

Batch nodes share machines: the cores a job may use are Slurm's CPUs per task or the process's
affinity mask, not the machine's core count. TensorFlow, OpenMP (LightGBM, scikit-learn) and the
BLAS behind numpy each start one thread per machine core by default; on a shared node that
oversubscribes the job's cores several times over. `limit` sets them all to the budget.
"""

from __future__ import annotations

import os

from aqi.config import AqiError

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def available() -> int:
    """Cores this process may use: SLURM_CPUS_PER_TASK when set, else the affinity mask."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity masks
        return os.cpu_count() or 1


def budget() -> int:
    """Threads for a library that takes a count (LiteRT): the `limit` set, or OMP_NUM_THREADS as a
    job sets it, else `available()`."""
    n = os.environ.get("OMP_NUM_THREADS", "")
    return int(n) if n.isdigit() and int(n) > 0 else available()


def limit(threads: int | None) -> int:
    """Hold TensorFlow, OpenMP and BLAS to `threads` (None: `available()`); returns the number.
    Environment variables cover libraries not loaded yet, threadpoolctl those already loaded."""
    most = available()
    n = most if threads is None else threads
    if not 1 <= n <= most:  # more threads than cores only slows a job (and 10^5 exhaust memory)
        raise AqiError(f"--threads {threads}: give 1..{most}, the CPUs this job may use")
    for name in THREAD_ENV:
        os.environ[name] = str(n)
    # OpenMP threads that sleep while they wait: spinning ones (libgomp's default) burn the time
    # slices of another job on the same cores; two GBM fits together took > 10x their time alone,
    # 1.6x when passive, which costs 14 % alone (`scripts/bench_gbm_shared.py`, README)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"  # one op at a time: the intra-op pool does the work
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    import sys

    if "tensorflow" in sys.modules:  # already initialised in this process (tests): best effort
        import contextlib

        tf = sys.modules["tensorflow"]
        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    return n
