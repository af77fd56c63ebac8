"""Where claim runs execute: this process, a local process pool, or a Dask cluster.

A claim run is an independent task, ``(claim, subject, profile, seed, dtype)``.
:func:`executor` turns the CLI's ``--jobs N`` and ``--executor SPEC`` into a
:class:`concurrent.futures.Executor` (or ``None``: run here, in order), and
:func:`map_runs` sends runs to it and gives the :class:`~.runner.Result` back in
the order of the runs, whatever order they finish in.

Subjects cross the process boundary by their *record*: a built-in subject by its
name, a loaded one by its origin (target, ``--as``, options), from which each worker
rebuilds it once (:func:`subject_record`, :func:`rebuild`). A subject made in this
process from closures (``Subject.replace``, a mapping of lambdas) has no record; it
runs here, and asking for workers says so in one line.

Every run is pinned to one BLAS and one numba thread, here and in every worker
(:func:`pin_threads`): a threaded reduction may sum in another order, and results
must be bit-identical for 1, 2 or N workers.

References
----------
Issue 19 ("Scale out: claims run in parallel on every core, and on a cluster through
an existing engine"). Python's ``concurrent.futures``; Dask distributed's
``Client.get_executor`` (a ``concurrent.futures.Executor`` over a cluster).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from typing import Iterable, Iterator, Sequence

__all__ = ["THREAD_VARIABLES", "pin_threads", "parse_jobs", "check_executor_spec", "executor", "subject_record",
           "rebuild", "run_task", "map_runs"]

#: The environment variables that fix the thread count of BLAS, OpenMP and numba.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def pin_threads() -> None:
    """One BLAS, OpenMP and numba thread for this process and the processes it starts.

    Sets :data:`THREAD_VARIABLES` for child processes, limits the thread pools already
    loaded (threadpoolctl) and numba's, if numba is imported. Idempotent.
    """
    numba = sys.modules.get("numba")
    for name in THREAD_VARIABLES:
        if name != "NUMBA_NUM_THREADS" or numba is None:
            os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:       # numpy not yet loaded threads nothing: the variables suffice
        pass
    else:
        threadpool_limits(1)
    if numba is not None:
        _pin_numba(numba)


def _pin_numba(numba) -> None:
    """numba already imported: one thread, keeping its variable and its config equal.

    numba reads ``NUMBA_NUM_THREADS`` again before every compilation and refuses
    (RuntimeError) a value other than the one its thread pool was launched with,
    so the variable may change only together with ``numba.config`` and only
    before the pool is launched; after that it is left as numba read it, and
    ``set_num_threads(1)`` limits numba's own parallel loops. The accelerated
    path's kernels take their thread count from ``numba.config``.
    """
    from numba.np.ufunc import parallel

    if not getattr(parallel, "_is_initialized", True):      # unknown: leave both alone
        os.environ["NUMBA_NUM_THREADS"] = "1"
        numba.config.NUMBA_NUM_THREADS = 1
    try:
        numba.set_num_threads(1)
    except (ValueError, RuntimeError, AttributeError):   # numba without a thread layer
        pass


def parse_jobs(text: str | int | None) -> int:
    """``--jobs``: a positive integer, or ``auto`` for the cores this process may use.

    Raises
    ------
    ValueError
        Naming ``--jobs`` for anything else.
    """
    if text is None:
        return 1
    if str(text).strip().lower() == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    try:
        jobs = int(text)
    except (TypeError, ValueError):
        jobs = 0
    if jobs < 1:
        raise ValueError(f"--jobs: expected a positive integer or 'auto', got {text!r}")
    return jobs


@contextlib.contextmanager
def executor(jobs: int = 1, spec: str | None = None) -> Iterator:
    """The executor for ``--jobs`` and ``--executor``; ``None`` means run in this process.

    Parameters
    ----------
    jobs : int
        Workers of a local pool (1: none, run here), or of ``dask:local``.
    spec : str, optional
        ``None`` or ``"local"``: a process pool of ``jobs`` workers (spawned, so that
        no thread state is forked). ``"dask:local"``: a Dask ``LocalCluster`` of
        ``jobs`` single-threaded worker processes. ``"dask:ADDRESS"``: the Dask
        scheduler at ADDRESS (``tcp://host:8786``).

    Raises
    ------
    ValueError
        Naming ``--executor`` for an unknown spec, or when Dask is not installed
        (the optional extra ``distributed``).
    """
    check_executor_spec(spec)
    pin_threads()
    if spec in (None, "", "local"):
        if jobs <= 1:
            yield None
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs, initializer=pin_threads,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
        return
    from distributed import Client, LocalCluster
    address = spec[len("dask:"):]
    with contextlib.ExitStack() as stack:
        if address == "local":
            cluster = stack.enter_context(LocalCluster(
                n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=40))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(address))
        yield client.get_executor(pure=False)


def check_executor_spec(spec: str | None) -> None:
    """Refuse an ``--executor`` that :func:`executor` cannot make, before any work starts.

    Raises
    ------
    ValueError
        Naming ``--executor``: an unknown spec, or ``dask:...`` without Dask installed.
    """
    if spec in (None, "", "local"):
        return
    if not spec.startswith("dask:") or spec == "dask:":
        raise ValueError(f"--executor: expected local, dask:local or dask:ADDRESS, got {spec!r}")
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise ValueError("--executor: dask needs the optional extra 'distributed' "
                         "(pip install 'transformer-theory[distributed]')")


def subject_record(subject) -> dict | None:
    """How a worker rebuilds ``subject``: its built-in name or its origin; None if neither.

    A subject loaded from a target (``check TARGET --as KIND --option ...``) carries
    ``options["origin"]``; a built-in one is found by name. The record also carries
    this process's ``sys.path``, so that a worker imports the same target modules.
    """
    from .builtin_subjects import SUBJECTS, get_subject

    origin = subject.options.get("origin")
    if origin and origin.get("target"):
        return {"name": subject.name, "origin": origin, "path": list(sys.path)}
    if subject.name in SUBJECTS and origin is None:
        # the built-in itself, not a replace()d variant: the same callables by name
        fresh = get_subject(subject.name).callables
        if set(fresh) == set(subject.callables) and all(
                getattr(fresh[k], "__qualname__", None) == getattr(f, "__qualname__", None)
                for k, f in subject.callables.items()):
            return {"name": subject.name, "origin": None, "path": list(sys.path)}
    return None


@functools.lru_cache(maxsize=8)
def _rebuilt(record_json: str):
    record = json.loads(record_json)
    for entry in reversed(record["path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if record["origin"] is None:
        from .builtin_subjects import get_subject

        return get_subject(record["name"])
    from .loader import load_subject

    origin = record["origin"]
    return load_subject(origin["target"], as_kind=origin.get("as"),
                        options=origin.get("options") or {}, name=record["name"])


def rebuild(record: dict):
    """The subject of a :func:`subject_record`, built once per worker process."""
    return _rebuilt(json.dumps(record, sort_keys=True, default=str))


def run_task(record: dict, claim_id: str, profile: str, seed: int, dtype: str | None,
             shard: tuple[int, int] | None = None):
    """One claim run (or one shard of it) in a worker: ``(status, evidence, seconds, error, reason)``.

    The claim is found by id in the worker's registry and the subject rebuilt from its
    record; the parent puts the answer back into a :class:`~.runner.Result`.
    """
    pin_threads()
    import warnings

    from . import registry
    from .runner import run_claim

    # A Dask worker's own threads use the random module while Hypothesis draws, which
    # Hypothesis reports as a strategy using random; the claims draw from numpy
    # generators they seed, and their results are checked equal to one process's.
    warnings.filterwarnings("ignore", message="Do not use the `random` module inside")

    [claim] = [c for c in registry.all_claims() if c.id == claim_id]
    r = run_claim(claim, rebuild(record), profile=profile, seed=seed, dtype=dtype, shard=shard)
    return r.status, r.evidence, r.seconds, r.error, r.reason


def map_runs(pool, subject, runs: Sequence[tuple], *, profile: str, seed: int | Sequence[int]
             ) -> Iterable:
    """The :class:`~.runner.Result` of each ``(claim, dtype)`` run, in the order of ``runs``.

    Parameters
    ----------
    pool : Executor or None
        None runs each claim here, one after the other.
    subject : Subject
    runs : sequence of (Claim, dtype or None)
    profile : str or Profile
        A workers' run takes the profile by name.
    seed : int, or a sequence of int (one per run)

    Raises
    ------
    ValueError
        Naming ``--jobs`` when ``pool`` is given but the subject has no record.
    """
    from .runner import Result, run_claim

    seeds = [seed] * len(runs) if isinstance(seed, int) else list(seed)
    if pool is None:
        for (claim, dtype), s in zip(runs, seeds):
            yield run_claim(claim, subject, profile=profile, seed=s, dtype=dtype)
        return
    record = subject_record(subject)
    if record is None:
        raise ValueError(f"--jobs: the subject {subject.name!r} was built in this process "
                         f"(closures, no target to import), so workers cannot rebuild it; "
                         f"run it with --jobs 1")
    from .profiles import get_profile
    from .runner import merge_shards

    name = getattr(profile, "name", profile)
    prof = get_profile(name)
    # a sharded claim's run is one task per shard (Claim.shards), merged in shard order
    tasks = [(claim, dtype, s, [(i, n) for i in range(n)] if n > 1 else [None])
             for (claim, dtype), s in zip(runs, seeds)
             for n in (claim.shard_count(prof),)]
    futures = [[pool.submit(run_task, record, claim.id, name, int(s), dtype, shard)
                for shard in shards] for claim, dtype, s, shards in tasks]
    try:
        for (claim, dtype, _, _), parts in zip(tasks, futures):
            results = []
            for future in parts:
                status, evidence, seconds, error, reason = future.result()
                results.append(Result(claim, subject.name, status, evidence, seconds,
                                      error=error, reason=reason, dtype=dtype))
            yield results[0] if len(results) == 1 else merge_shards(results)
    finally:
        for parts in futures:
            for f in parts:
                f.cancel()
