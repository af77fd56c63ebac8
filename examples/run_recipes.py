"""Run every recipe (``transformer-theory check ... --profile ci --json``) and tabulate what was seen.

    python run_recipes.py [--only NAME,...] [--out results.json] [--markdown RESULTS.md]

Each recipe is one ``check`` command on a library, with the adapter module beside this file
(``module:callable`` targets are imported with this folder on PYTHONPATH). The results go to
``results.json`` (library versions, command, exit status, counts, seconds, adapter lines and every
failure with its detail) and to the table between the markers of ``RESULTS.md``; the rest of
RESULTS.md (the reading of each failure) is written by hand and kept.

Exit status: 0 when every recipe ran (whatever its claims said: a failing claim is a finding about
a library, reported, not an error of this script); 1 when a recipe could not run (exit 2: the
target or an option was refused, or the command crashed or timed out).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "<!-- results:start -->", "<!-- results:end -->"


def recipe(name, library, target, kind, *options, module=None, claims=None):
    """One check command: ``transformer-theory check TARGET --as KIND --option ... [--claims]``."""
    args = [target, "--as", kind]
    for option in options:
        args += ["--option", option]
    if claims:
        args += ["--claims", claims]
    return {"name": name, "library": library, "target": target, "args": args,
            "module": module if module is not None else target.split(":")[0]}


RECIPES = [
    recipe("torch F.scaled_dot_product_attention", "torch",
           "torch.nn.functional:scaled_dot_product_attention", "attention", "tensors=torch",
           "rename=mask:attn_mask,causal:is_causal", "causal_flag=bool",
           "masked_inputs=finite", module=""),
    recipe("torch F.layer_norm (nn.LayerNorm)", "torch", "torch_nn:layer_norm", "layer_norm",
           "tensors=torch"),
    recipe("torch nn.TransformerEncoderLayer", "torch", "torch_nn:encoder_layer", "encoder",
           "d_ff=32"),
    recipe("torch nn.MultiheadAttention (self)", "torch", "torch_nn:self_attention", "encoder",
           "tensors=torch", "d_model=16", "dtypes=float32"),
    recipe("HF sdpa_attention_forward", "transformers", "hf_transformers:sdpa_attention",
           "attention", "tensors=torch", "causal_flag=bool", "causal_alignment=square",
           "masked_inputs=finite"),
    recipe("HF llama eager_attention_forward", "transformers", "hf_transformers:eager_attention",
           "attention", "tensors=torch", "causal_flag=bool", "fully_masked_row=uniform",
           "compute_dtype=float32 softmax", "masked_inputs=finite"),
    recipe("HF Llama RoPE", "transformers", "hf_transformers:rope", "rope", "tensors=torch",
           "rope_pairing=half", "compute_dtype=float32"),
    recipe("HF LlamaRMSNorm", "transformers", "hf_modern:rms_norm", "rms_norm", "tensors=torch",
           "compute_dtype=float32"),
    recipe("HF Gemma 2 eager attention (softcap)", "transformers", "hf_modern:gemma2_attention",
           "attention", "tensors=torch", "causal_flag=none", "fully_masked_row=uniform",
           "compute_dtype=float32 softmax", "masked_inputs=finite",
           "dtypes=float32,float16,bfloat16"),
    recipe("HF GPT2Block", "transformers", "hf_transformers:gpt2_block", "causal", "d_model=32"),
    recipe("HF BertLayer", "transformers", "hf_transformers:bert_layer", "encoder", "d_model=32"),
    recipe("x-transformers Encoder", "x-transformers", "x_transformers_models:encoder", "encoder",
           "d_model=32", "n_layers=2"),
    recipe("x-transformers Decoder", "x-transformers", "x_transformers_models:decoder", "causal",
           "d_model=32", "n_layers=2"),
    recipe("rotary-embedding-torch", "rotary-embedding-torch", "x_transformers_models:rope",
           "rope", "tensors=torch", "rope_positions=offset", "compute_dtype=float32"),
    recipe("timm ViT Attention", "timm", "timm_vit:attention", "encoder", "d_model=32"),
    recipe("timm ViT Block", "timm", "timm_vit:block", "encoder", "d_model=32", "d_ff=128"),
    recipe("flax linen.dot_product_attention", "flax", "flax_linen:attention", "attention",
           "tensors=jax", "layout=(B, L, H, E)", "scale=none", "causal_flag=none",
           "fully_masked_row=uniform", "dtypes=float32", "masked_inputs=finite"),
    recipe("flax linen.LayerNorm", "flax", "flax_linen:layer_norm", "layer_norm", "tensors=jax",
           "dtypes=float32"),
    recipe("keras MultiHeadAttention", "keras", "keras_layers:multi_head_attention", "mha",
           "fully_masked_row=uniform", "dtypes=float32"),
    recipe("keras LayerNormalization", "keras", "keras_layers:layer_norm", "layer_norm",
           "dtypes=float32"),
    recipe("tinygrad scaled_dot_product_attention", "tinygrad", "tinygrad_sdpa:attention",
           "attention", "rename=mask:attn_mask,causal:is_causal", "causal_flag=bool",
           "scale=none", "fully_masked_row=nan", "masked_inputs=finite",
           claims="attention.*,masking.*,heads.*,permutation.*,online_softmax.*,contract.*"),
    recipe("performer-pytorch softmax_kernel", "performer-pytorch", "performer:softmax_kernel",
           "random_features", "tensors=torch", "feature_kinds=positive", "feature_stabilizer=row",
           "feature_eps=1e-4"),
    recipe("performer-pytorch orthogonal matrix", "performer-pytorch", "performer:orthogonal",
           "orthogonal_gaussian", "rng=seed"),
]


# ---------------------------------------------------------------------------
# Adapter lines
# ---------------------------------------------------------------------------

def _code_lines(source: str, node: ast.AST) -> int:
    """Non-blank, non-comment source lines of a top-level statement."""
    lines = source.splitlines()[node.lineno - 1:node.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def _defined(node: ast.AST) -> set[str]:
    """Names a top-level statement binds (an assignment to ``obj.attr`` counts for ``obj``)."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.Assign):
        return {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _reachable(nodes, defs, roots) -> set[int]:
    seen, stack = set(), list(roots)
    while stack:
        for i in defs.get(stack.pop(), ()):
            if i not in seen:
                seen.add(i)
                stack.extend(_used(nodes[i]))
    return seen


def adapter_lines(module: str, name: str) -> int:
    """Lines of adapter code a recipe needs (non-blank, non-comment, docstring excluded).

    Counted: the target's definition, the module-level statements it uses (transitively), and
    setup code that no target uses (``torch.manual_seed``, an environment variable). A target
    in a library module (``module=""``) needs no adapter: 0.
    """
    if not module:
        return 0
    source = (HERE / f"{module}.py").read_text()
    nodes = ast.parse(source).body
    if nodes and isinstance(nodes[0], ast.Expr) and isinstance(nodes[0].value, ast.Constant):
        nodes = nodes[1:]                                               # the docstring
    defs: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for n in _defined(node):
            defs.setdefault(n, []).append(i)
    targets = {r["target"].split(":")[1].split(".")[0] for r in RECIPES if r["module"] == module}
    used_by_any = _reachable(nodes, defs, targets | {name})
    chosen = _reachable(nodes, defs, {name}) | (set(range(len(nodes))) - used_by_any)
    return sum(_code_lines(source, nodes[i]) for i in sorted(chosen))


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _executable() -> str:
    script = Path(sys.executable).with_name("transformer-theory")
    return str(script) if script.exists() else "transformer-theory"


def run(r: dict, profile: str, timeout: float, tt: list[str] | None = None) -> dict:
    command = [*(tt or [_executable()]), "check", *r["args"], "--profile", profile, "--json", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True,
                              timeout=timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = None, exc.stdout or "", f"timed out after {timeout:.0f} s"
        out = out.decode() if isinstance(out, bytes) else out
    seconds = time.perf_counter() - start
    record = {"name": r["name"], "library": r["library"], "version": _version(r["library"]),
              "command": "transformer-theory check " + shlex.join(r["args"]),
              "adapter_lines": adapter_lines(r["module"], r["target"].split(":")[1].split(".")[0]),
              "exit_code": code, "seconds": round(seconds, 1)}
    try:
        report = json.loads(out)
    except ValueError:
        report = None
    if report is None:
        record["error"] = err.strip().splitlines()[-1] if err.strip() else "no output"
        record["counts"] = {}
        record["failures"] = []
        return record
    results = report.get("results", [])
    counts = {s: sum(1 for x in results if x["status"] == s)
              for s in ("passed", "failed", "error", "not_applicable")}
    record["counts"] = {"run": len(results), **counts}
    record["conventions"] = report.get("conventions", {})
    record["failures"] = [
        {"id": x["id"], "status": x["status"], "detail": x["detail"].strip(),
         "max_error": x.get("max_error"), "tolerance": x.get("tolerance"),
         "example": _short(x.get("example"))}
        for x in results if x["status"] in ("failed", "error")]
    record["not_applicable"] = [{"id": x["id"], "detail": x["detail"].strip()}
                                for x in results if x["status"] == "not_applicable"]
    return record


def _short(example, limit: int = 400):
    text = json.dumps(example, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------

def markdown(data: dict) -> str:
    lines = [START, "",
             f"Seen on {data['date']} (Python {data['python']}, `--profile {data['profile']}`, "
             f"seed 20170612), by `make examples`:", "",
             "| recipe | library | version | exit | run | passed | failed | error | n/a | "
             "seconds | adapter lines |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["recipes"]:
        c = r["counts"]
        cells = [r["name"], r["library"], r["version"], str(r["exit_code"]),
                 *(str(c.get(k, "-")) for k in ("run", "passed", "failed", "error",
                                                "not_applicable")),
                 f"{r['seconds']:.1f}", str(r["adapter_lines"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Commands (run in `examples/` with `PYTHONPATH=.`; `make examples` adds "
              "`--profile ci --json`):", ""]
    for r in data["recipes"]:
        lines.append(f"- {r['name']}: `{r['command']}`")
    lines += ["", "Claims that failed or raised, as reported (first line of the detail):", ""]
    for r in data["recipes"]:
        if r.get("error"):
            lines.append(f"- **{r['name']}**: did not run: {r['error']}")
        for f in r["failures"]:
            first = f["detail"].splitlines()[0] if f["detail"] else ""
            err = (f" (error {f['max_error']:.2e} > tolerance {f['tolerance']:.2e})"
                   if isinstance(f["max_error"], (int, float)) and
                   isinstance(f["tolerance"], (int, float)) else "")
            lines.append(f"- **{r['name']}** `{f['id']}` {f['status']}: {first[:300]}{err}")
    lines += ["", END]
    return "\n".join(lines)


def write_markdown(path: Path, data: dict) -> None:
    table = markdown(data)
    text = path.read_text() if path.exists() else f"# Recipes for real libraries\n\n{START}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + table + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + table + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated recipe names (substrings) to run")
    p.add_argument("--profile", default="ci")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per recipe")
    p.add_argument("--out", default=str(HERE / "results.json"))
    p.add_argument("--markdown", default=str(HERE / "RESULTS.md"))
    p.add_argument("--tt", help="the command running transformer-theory (default: the console "
                                "script beside this Python)")
    args = p.parse_args(argv)
    chosen = RECIPES
    if args.only:
        keys = [k.strip().lower() for k in args.only.split(",")]
        chosen = [r for r in RECIPES if any(k in r["name"].lower() for k in keys)]
    records = []
    for r in chosen:
        sys.stderr.write(f"{r['name']} ... ")
        sys.stderr.flush()
        rec = run(r, args.profile, args.timeout, shlex.split(args.tt) if args.tt else None)
        c = rec["counts"]
        sys.stderr.write(f"exit {rec['exit_code']}, {c.get('passed', 0)} passed, "
                         f"{c.get('failed', 0)} failed, {c.get('error', 0)} error, "
                         f"{c.get('not_applicable', 0)} n/a, {rec['seconds']:.0f} s"
                         + (f" ({rec['error']})" if rec.get("error") else "") + "\n")
        records.append(rec)
    data = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "profile": args.profile, "recipes": records}
    if args.only and Path(args.out).exists():               # merge a partial run into the last one
        old = json.loads(Path(args.out).read_text())
        names = {r["name"] for r in records}
        merged = {r["name"]: r for r in old.get("recipes", []) if r["name"] not in names}
        merged.update({r["name"]: r for r in records})
        data["recipes"] = [merged[r["name"]] for r in RECIPES if r["name"] in merged]
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    write_markdown(Path(args.markdown), data)
    broken = [r["name"] for r in records if r["exit_code"] not in (0, 1)]
    if broken:
        sys.stderr.write("recipes that did not run: " + ", ".join(broken) + "\n")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
