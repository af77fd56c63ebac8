"""Claims in worker processes and on Dask give the results of one process (issue 19)."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest

from transformer_theory.theory import cli, registry
from transformer_theory.theory.builtin_subjects import get_subject
from transformer_theory.theory.executor import (check_executor_spec, executor, map_runs,
                                                parse_jobs, subject_record)
from transformer_theory.theory.runner import run_claims

# the usual runs and both half-precision runs, a Monte Carlo claim and a symbolic one
CLAIMS = ("attention.scaled_dot_product,normalization.rmsnorm_definition,"
          "performer.unbiased,proof.softmax.shift_invariance,masking.window_key_count")


def _records(results) -> list[dict]:
    """``verify --json`` records, timings aside."""
    return [{k: v for k, v in r.to_json().items() if k != "seconds"} for r in results]


def _run(pool, claims=CLAIMS):
    return _records(run_claims(registry.find(claims), get_subject("reference"), profile="ci",
                               seed=7, pool=pool))


def test_two_workers_give_the_results_of_one_process():
    alone = _run(None)
    with executor(2) as pool:
        assert _run(pool) == alone
    assert len(alone) >= 9 and {r["dtype"] for r in alone} == {None, "float16", "bfloat16"}


def test_dask_local_cluster_gives_the_results_of_one_process():
    pytest.importorskip("distributed", reason="the optional extra 'distributed'")
    alone = _run(None, "attention.scaled_dot_product,performer.unbiased")
    with executor(2, "dask:local") as pool:
        assert _run(pool, "attention.scaled_dot_product,performer.unbiased") == alone


def test_a_loaded_target_is_rebuilt_in_the_workers(tmp_path, monkeypatch):
    """A user's module:callable crosses to a worker by its origin, not by pickling."""
    (tmp_path / "my_attention_mod.py").write_text(textwrap.dedent("""
        from transformer_theory.impl.attention import attention as _ref

        def attention(q, k, v, **kw):
            return _ref(q, k, v, **kw)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from transformer_theory.theory.conformance import check

    kw = dict(as_kind="attention", profile="ci", seed=3, diagnosis=False)
    alone = check("my_attention_mod:attention", "attention.*", **kw).to_json()
    with executor(2) as pool:
        pooled = check("my_attention_mod:attention", "attention.*", pool=pool, **kw).to_json()

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k != "seconds"}
        return [strip(x) for x in o] if isinstance(o, list) else o
    assert strip(pooled) == strip(alone) and alone["results"]


def test_a_subject_made_of_closures_cannot_go_to_workers():
    ref = get_subject("reference")
    made_here = ref.replace(attention=lambda q, k, v, **kw: ref.attention(q, k, v, **kw))
    assert subject_record(ref) is not None and subject_record(made_here) is None
    with executor(2) as pool:
        with pytest.raises(ValueError, match="--jobs"):
            list(map_runs(pool, made_here, [(registry.find("attention.scaled_dot_product")[0],
                                             None)], profile="ci", seed=1))


def test_sweep_with_workers_equals_the_sweep_in_one_process():
    from transformer_theory.theory.sweep import sweep

    claims = registry.find("attention.softcap_limit,proof.softmax.shift_invariance")
    ref = get_subject("reference")
    alone = [s.to_json() for s in sweep(claims, ref, profile="ci", seeds=[1, 2, 3])]
    with executor(2) as pool:
        assert [s.to_json() for s in sweep(claims, ref, profile="ci", seeds=[1, 2, 3],
                                           pool=pool)] == alone


@pytest.mark.parametrize("text, jobs", [("1", 1), ("3", 3), (2, 2), (None, 1)])
def test_parse_jobs(text, jobs):
    assert parse_jobs(text) == jobs
    assert parse_jobs("auto") >= 1


@pytest.mark.parametrize("bad", ["0", "-2", "many", "1.5"])
def test_parse_jobs_refuses(bad):
    with pytest.raises(ValueError, match="--jobs"):
        parse_jobs(bad)


def test_bad_executor_is_one_line_and_exit_2(capsys):
    with pytest.raises(ValueError, match="--executor"):
        check_executor_spec("ray:local")
    for argv in (["verify", "--jobs", "0"], ["verify", "--executor", "mpi"],
                 ["report", "--out", "/tmp/x", "--jobs", "none"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and ("--jobs" in err or "--executor" in err)


def test_verify_jobs_2_json_is_the_json_of_jobs_1(capsys):
    def run(*extra):
        assert cli.main(["verify", "--json", "-q", "--profile", "ci", "--claims",
                         "attention.explicit_scale,heads.*", *extra]) == 0
        doc = json.loads(capsys.readouterr().out)
        for r in doc["results"]:
            r.pop("seconds")
        return doc
    assert run("--jobs", "2") == run()


def test_workers_are_pinned_to_one_thread():
    """Bit-identical results need one BLAS and numba thread everywhere (clarification)."""
    with executor(1):
        import os

        assert all(os.environ[v] == "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                    "MKL_NUM_THREADS"))
        from threadpoolctl import threadpool_info

        assert all(p["num_threads"] == 1 for p in threadpool_info())
        numba = sys.modules.get("numba")
        if numba is None:
            assert os.environ["NUMBA_NUM_THREADS"] == "1"
        else:        # numba rereads the variable before every compilation: it must match
            assert os.environ.get("NUMBA_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS)) \
                == str(numba.config.NUMBA_NUM_THREADS)
            numba.config.reload_config()          # raised RuntimeError once the pool was launched
            assert numba.get_num_threads() == 1


def test_pinning_after_numba_launched_its_threads_keeps_compiling():
    """Pinning once numba's pool runs must not make the next compilation fail (it did: the
    variable changed under numba, which refuses a new value after launch)."""
    import subprocess

    code = ("import numba\nfrom numba import njit\n"
            "from transformer_theory.theory.executor import pin_threads\n"
            "numba.get_num_threads()\n"                 # launches the pool with 2 threads
            "pin_threads()\n"
            "assert njit(lambda x: x + 1)(1) == 2\n")   # a compilation rereads the configuration
    env = dict(os.environ, NUMBA_NUM_THREADS="2")           # a fresh process, pool not pinned
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# --- shards --------------------------------------------------------------------------------
def _strip(result) -> dict:
    doc = result.to_json()
    doc.pop("seconds")
    return doc


def _merged_in_workers(claim, subject, seed: int, shards: int):
    """The ``shards`` shards of a ci run sent to two workers, merged here in shard order."""
    from transformer_theory.theory.executor import run_task
    from transformer_theory.theory.runner import Result, merge_shards

    record = subject_record(subject)
    with executor(2) as pool:
        futures = [pool.submit(run_task, record, claim.id, "ci", seed, None, (i, shards))
                   for i in range(shards)]
        outcomes = [f.result() for f in futures]          # (status, evidence, s, error, reason)
        return merge_shards([Result(claim, subject.name, *o[:3], error=o[3], reason=o[4])
                             for o in outcomes])


def test_shards_merge_to_the_same_result_here_and_in_workers():
    """dyck.recognizer_exact cut into 3 shards (thorough cuts it into 16): merged in this
    process and from workers alike; the counts add up to the unsharded run's."""
    from transformer_theory.theory.runner import merge_shards, run_claim

    [claim] = registry.find("dyck.recognizer_exact")
    ref = get_subject("reference")
    whole = run_claim(claim, ref, profile="ci", seed=5)
    parts = [run_claim(claim, ref, profile="ci", seed=5, shard=(i, 3)) for i in range(3)]
    merged = merge_shards(parts)
    assert merged.status.value == "passed" and merged.evidence.cases == whole.evidence.cases
    assert parts[1].evidence.cases < parts[2].evidence.cases     # the last also does the rest
    assert _strip(_merged_in_workers(claim, ref, 5, 3)) == _strip(merged)


def test_a_sharded_failure_keeps_the_first_failing_string():
    """A broken recogniser: the lowest failing shard holds the unsharded run's first
    disagreement (the shards are contiguous in string order)."""
    from transformer_theory.theory.runner import merge_shards, run_claim
    from tests.mutants import all_mutants

    [claim] = registry.find("dyck.recognizer_exact")
    [mutant] = [m for m in all_mutants() if m.name == "dyck_no_type_check"]
    broken = mutant.build(get_subject("reference"))
    whole = run_claim(claim, broken, profile="ci", seed=5)
    merged = merge_shards([run_claim(claim, broken, profile="ci", seed=5, shard=(i, 4))
                           for i in range(4)])
    assert whole.status.value == merged.status.value == "failed"
    assert merged.evidence.falsifying_example == whole.evidence.falsifying_example


def test_thorough_cuts_the_recognisers_into_shards_and_the_shard_seeds_are_their_own():
    from transformer_theory.theory.profiles import get_profile
    from transformer_theory.theory.runner import Context

    [claim] = registry.find("dyck.recognizer_exact")
    assert claim.shard_count(get_profile("ci")) == 1
    assert claim.shard_count(get_profile("thorough")) == 16
    ctx = [Context(get_profile("thorough"), 9, claim.id, i, 4) for i in range(4)]
    assert [list(c.shard_range(10)) for c in ctx] == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    draws = [c.rng("x").integers(1 << 30) for c in ctx]
    assert len(set(draws)) == 4                                   # seeded from (claim, shard)
    assert ctx[2].rng("x").integers(1 << 30) == draws[2]          # a shard re-runs alone


# --- pooled Monte Carlo shards ----------------------------------------------------------------
def _pooled_claim(pool_fn, draw_fn):
    from transformer_theory.theory.claim import Claim, Kind
    from transformer_theory.theory.statistics import mc_shards, pooled_draws

    return Claim("performer.pooled_example", "t", "s", (), Kind.STATISTICAL, ("softmax",),
                 check=lambda subject, ctx: pooled_draws(subject, ctx, draw_fn, pool_fn),
                 shards=mc_shards, pool=pool_fn)


def test_pooled_shards_are_tested_once_on_every_shard_draw_in_shard_order():
    """The draws of 3 shards reach ``pool`` concatenated in shard order, with the unsharded
    context; one shard's partial evidence never reaches the JSON; a pool that raises is an
    error, as a check that raises is."""
    from transformer_theory.theory.claim import Evidence
    from transformer_theory.theory.runner import merge_shards, run_claim

    seen = {}

    def draw(subject, ctx):
        part = ctx.shard_range(10)
        return {"x": np.arange(part.start, part.stop) + ctx.rng("x").random(len(part)) / 10}

    def decide(ctx, draws):
        seen["shards"], seen["x"] = ctx.shards, draws["x"]
        return Evidence(passed=bool(np.all(np.diff(np.floor(draws["x"])) == 1)),
                        cases=len(draws["x"]), detail="in order")

    claim, ref = _pooled_claim(decide, draw), get_subject("reference")
    whole = run_claim(claim, ref, profile="ci", seed=3)
    assert whole.status.value == "passed" and seen["shards"] == 1
    whole_x = seen["x"]
    parts = [run_claim(claim, ref, profile="ci", seed=3, shard=(i, 3)) for i in range(3)]
    assert all(p.evidence.partial is not None and "partial" not in p.evidence.to_json()
               for p in parts)
    merged = merge_shards(parts)
    assert merged.status.value == "passed" and merged.evidence.cases == 10
    assert seen["shards"] == 1 and np.floor(seen["x"]).tolist() == list(range(10))
    assert not np.array_equal(seen["x"], whole_x)            # each shard draws its own stream

    def broken(ctx, draws):
        raise ZeroDivisionError("pooling broke")
    failing = merge_shards([run_claim(_pooled_claim(broken, draw), ref, profile="ci", seed=3,
                                      shard=(i, 2)) for i in range(2)])
    assert failing.status.value == "error" and "pooling broke" in failing.error


def test_theorem2_shards_pool_alike_here_and_in_workers_and_still_reject_iid_rows():
    """performer.orthogonal_mse_bound cut into 2 shards (thorough cuts it into 8): merged here
    and from workers alike, with as many draws as one unsharded run; the iid-rows mutant is
    rejected from pooled shards as from one run."""
    from transformer_theory.theory.profiles import get_profile
    from transformer_theory.theory.runner import Context, merge_shards, run_claim
    from transformer_theory.theory.claims.performer.orthogonal import _bound_point
    from tests.mutants import all_mutants

    [claim] = registry.find("performer.orthogonal_mse_bound")
    assert claim.shard_count(get_profile("ci")) == 1
    assert claim.shard_count(get_profile("thorough")) == 8
    ref = get_subject("reference")
    merged = merge_shards([run_claim(claim, ref, profile="ci", seed=5, shard=(i, 2))
                           for i in range(2)])
    samples = _bound_point(Context(get_profile("ci"), 5, claim.id)).samples
    assert merged.status.value == "passed" and merged.evidence.cases == samples
    assert _strip(_merged_in_workers(claim, ref, 5, 2)) == _strip(merged)
    [mutant] = [m for m in all_mutants() if m.name == "orthogonal_gaussian_iid"]
    broken = mutant.build(ref)
    rejected = merge_shards([run_claim(claim, broken, profile="ci", seed=5, shard=(i, 2))
                             for i in range(2)])
    assert rejected.status.value == "failed"


# --- progress --------------------------------------------------------------------------------
def test_the_bar_weighs_runs_by_their_last_timings_and_shows_an_eta(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from transformer_theory.theory.progress import Timings, run_bar

    monkeypatch.setenv("TT_CACHE_DIR", str(tmp_path))
    results = run_claims(registry.find("attention.softcap_limit,attention.explicit_scale"),
                         get_subject("reference"), profile="ci", seed=1)
    runs = [(r.id, r.dtype) for r in results]
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with run_bar(True, "reference", "ci", runs, console=console) as advance:
        for i, r in enumerate(results, 1):
            advance(i, len(results), r)
    assert "eta" in out.getvalue() and f"{len(runs)}/{len(runs)}" in out.getvalue()
    saved = Timings()                                    # the next run's estimate
    keys = [Timings.key("reference", "ci", cid, d) for cid, d in runs]
    assert saved.expected(keys) == [max(round(r.seconds, 4), 1e-3) for r in results]
    unknown = saved.expected(keys[:2] + ["reference|ci|never.seen|"])
    assert unknown[2] == pytest.approx((unknown[0] + unknown[1]) / 2)   # the known ones' median


def test_an_unwritable_cache_costs_only_the_estimate(tmp_path, monkeypatch):
    from transformer_theory.theory.progress import Timings, run_bar

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TT_CACHE_DIR", str(blocker / "below-a-file"))
    with run_bar(False, "reference", "ci", [("a.b", None)]) as advance:
        advance(1, 1, type("R", (), {"seconds": 0.5, "status": "passed", "id": "a.b"})())
    assert Timings().seconds == {}
