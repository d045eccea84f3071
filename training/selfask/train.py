"""Trains the self-ask demo model: a ~1M-parameter byte-level llama (RMSNorm, RoPE, grouped-query
attention, SwiGLU, tied embeddings: what plugins/llm-local computes) on the corpus of make_corpus.py,
with PyTorch on the CPU, deterministically, and exports it to GGUF for llm-local.

    python training/selfask/make_kb.py
    python training/selfask/make_corpus.py
    python training/selfask/train.py [--steps 2000] [--threads 1] [--out models/selfask-tiny/selfask-tiny.gguf]

The tokenizer is bytes: token b (0-255) is byte b, written in GGUF as GPT-2's byte-level character
(tokenizer.ggml.model = gpt2, so llm-local maps text to bytes 1:1), then <s> (256, begin of text,
added before every prompt) and </s> (257, end of text, written after each answer). The merge list
holds one merge whose result is no token: it never applies (llm-local requires the key, and the gguf
writer drops empty arrays).

RoPE rotates adjacent pairs (x[2i], x[2i+1]), as llm-local and llama.cpp do, so the weights are
written as trained (no q/k permutation). The loss is on what the model writes in a self-ask run (see
make_corpus.py), not on the prompt, the question or the kb's answers.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from selfask_common import MODEL_FILE, PROMPT, SEED

HERE = Path(__file__).resolve().parent
BOS, EOS = 256, 257
VOCAB = 258


@dataclass
class Config:
    dim: int = 128
    hidden: int = 352
    layers: int = 5
    heads: int = 4
    kv_heads: int = 4
    ctx: int = 512
    rope_base: float = 10000.0
    eps: float = 1e-5
    vocab: int = VOCAB

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


# ---- the model ----------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    inv = cfg.rope_base ** (-torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim)
    angles = torch.arange(cfg.ctx, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(angles).float(), torch.sin(angles).float()


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, heads, T, head_dim): adjacent pairs rotated, as llm-local's rope()."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.attn_norm = RMSNorm(cfg.dim, cfg.eps)
        self.q = nn.Linear(cfg.dim, cfg.heads * hd, bias=False)
        self.k = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.v = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.o = nn.Linear(cfg.heads * hd, cfg.dim, bias=False)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.eps)
        self.gate = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.up = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.down = nn.Linear(cfg.hidden, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        bsz, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(bsz, t, cfg.heads, cfg.head_dim).transpose(1, 2)
        k = self.k(h).view(bsz, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v(h).view(bsz, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        group = cfg.heads // cfg.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(att.transpose(1, 2).reshape(bsz, t, cfg.heads * cfg.head_dim))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.eps)
        cos, sin = rope_tables(cfg)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * cfg.layers) if name.endswith(("o.weight", "down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.embed(tokens)
        cos, sin = self.cos[:t], self.sin[:t]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norm(x) @ self.embed.weight.T  # tied output layer


# ---- data ---------------------------------------------------------------------------------------

def encode(row: dict) -> tuple[list[int], list[int]]:
    """Tokens <s> + bytes + </s>, and the loss weight of each token (0 = context only)."""
    tokens, mask = [BOS], [0.0]
    for text, weight in row["segments"]:
        data = text.encode("utf-8")
        tokens += list(data)
        mask += [float(weight)] * len(data)
    tokens.append(EOS)
    mask.append(1.0)
    return tokens, mask


def batches(rows: list[tuple[list[int], list[float]]], size: int, rng: random.Random):
    """Endless shuffled batches: inputs, targets, loss mask (padding masked). Examples of similar
    length share a batch (sorted within windows of 32 batches), so little is spent on padding."""
    while True:
        order = list(range(len(rows)))
        rng.shuffle(order)
        window = 32 * size
        groups = []
        for w in range(0, len(order), window):
            part = sorted(order[w:w + window], key=lambda j: len(rows[j][0]))
            groups += [part[i:i + size] for i in range(0, len(part) - size + 1, size)]
        rng.shuffle(groups)
        for group in groups:
            chunk = [rows[j] for j in group]
            t = max(len(tok) for tok, _ in chunk) - 1
            x = torch.zeros(size, t, dtype=torch.long)
            y = torch.zeros(size, t, dtype=torch.long)
            m = torch.zeros(size, t)
            for r, (tok, mask) in enumerate(chunk):
                n = len(tok) - 1
                x[r, :n] = torch.tensor(tok[:-1])
                y[r, :n] = torch.tensor(tok[1:])
                m[r, :n] = torch.tensor(mask[1:], dtype=torch.float)
            yield x, y, m


# ---- export -------------------------------------------------------------------------------------

def byte_char(b: int) -> str:
    """GPT-2's bytes_to_unicode: the printable character that stands for byte b."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    if b in printable:
        return chr(b)
    return chr(256 + [c for c in range(256) if c not in printable].index(b))


def export_gguf(model: Llama, path: Path, qtype: str, meta: dict) -> None:
    import gguf
    from gguf import GGMLQuantizationType as QT
    from gguf.quants import quantize

    cfg = model.cfg
    kind = {"f32": QT.F32, "f16": QT.F16, "q8_0": QT.Q8_0}[qtype]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("selfask-tiny")
    writer.add_description("A ~1M-parameter byte-level llama trained for the self-ask agent over the demo's "
                           "knowledge base of fictional people (training/selfask/)")
    writer.add_license("Apache-2.0")
    writer.add_context_length(cfg.ctx)
    writer.add_embedding_length(cfg.dim)
    writer.add_block_count(cfg.layers)
    writer.add_feed_forward_length(cfg.hidden)
    writer.add_head_count(cfg.heads)
    writer.add_head_count_kv(cfg.kv_heads)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_base)
    writer.add_layer_norm_rms_eps(cfg.eps)
    writer.add_vocab_size(cfg.vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([byte_char(b) for b in range(256)] + ["<s>", "</s>"])
    writer.add_token_types([1] * 256 + [3, 3])
    writer.add_token_merges([f"{byte_char(0)} {byte_char(1)}"])  # never applies: no token is their join
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_add_bos_token(True)
    writer.add_string("selfask.prompt", PROMPT)
    writer.add_string("selfask.training", json.dumps(meta, sort_keys=True))

    def put(name: str, t: torch.Tensor) -> None:
        a = t.detach().float().numpy().astype(np.float32)
        if a.ndim == 1 or kind == QT.F32:
            writer.add_tensor(name, a)
        elif kind == QT.F16:
            writer.add_tensor(name, a.astype(np.float16))
        else:
            data = quantize(a, kind)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=kind)

    put("token_embd.weight", model.embed.weight)
    put("output_norm.weight", model.norm.weight)
    names = {"attn_norm": "attn_norm", "ffn_norm": "ffn_norm", "q": "attn_q", "k": "attn_k", "v": "attn_v",
             "o": "attn_output", "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
    for i, block in enumerate(model.blocks):
        for attr, name in names.items():
            put(f"blk.{i}.{name}.weight", getattr(block, attr).weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ---- a quick check in torch (the real evaluation is bench/selfask_eval.py, inside Wasm) ------------

@torch.no_grad()
def greedy(model: Llama, prompt: str, stop: str, max_new: int = 120) -> str:
    tokens = [BOS, *prompt.encode("utf-8")]
    out = bytearray()
    for _ in range(max_new):
        if len(tokens) >= model.cfg.ctx:
            break
        nxt = int(model(torch.tensor([tokens]))[0, -1].argmax())
        if nxt >= 256:
            break
        tokens.append(nxt)
        out.append(nxt)
        if stop and out.endswith(stop.encode()):
            return out[:-len(stop)].decode("utf-8", "replace")
    return out.decode("utf-8", "replace")


def choose(model: Llama, prompt: str, options: list[str]) -> str:
    """The option whose bytes (after a space) the model finds likeliest: llm-local's `choices`."""
    base = [BOS, *prompt.encode("utf-8")]
    best, best_score = options[0], -math.inf
    for option in options:
        ext = list((" " + option).encode("utf-8"))
        logp = torch.log_softmax(model(torch.tensor([base + ext]))[0], -1)
        score = float(sum(logp[len(base) - 1 + i, t] for i, t in enumerate(ext)))
        if score > best_score:
            best, best_score = option, score
    return best


def quick_eval(model: Llama, n: int) -> dict[str, float]:
    """Self-ask and direct accuracy on n held-out questions, with the kb's answers from the kb file."""
    from make_kb import world
    from selfask_common import ASK, DIRECT, FINAL, STOP, choices, direct_answer, eval_questions, normalize

    w = world()
    facts = {p.name: p for p in w.people}
    right = {"self-ask": 0, "direct": 0}
    for ex in eval_questions(w, n):
        pad = PROMPT + "\n\nQuestion: " + ex.question + ASK
        answer = ""
        options = choices(ex.question)
        for _ in range(5):
            text = greedy(model, pad, STOP)
            if FINAL in text and options:  # as plugins/self-ask does: the model only chooses
                answer = choose(model, pad + text.split(FINAL, 1)[0] + FINAL, options)
                break
            if FINAL in text:
                answer = text.split(FINAL, 1)[1].strip().split("\n")[0].strip()
                break
            if "Follow up:" not in text:
                break
            line = text.split("\n")
            keep = next(i for i, ln in enumerate(line) if "Follow up:" in ln)
            follow = "\n".join(line[:keep + 1])
            question = line[keep].split("Follow up:", 1)[1].strip()
            pad += follow + "\nIntermediate answer: " + mirror_kb(question, facts, w.country_of) + "\n"
        right["self-ask"] += normalize(answer) == normalize(ex.answer)
        got = direct_answer(greedy(model, DIRECT.format(question=ex.question), "", 40))
        right["direct"] += normalize(got) == normalize(ex.answer)
    return {k: v / n for k, v in right.items()}


def probe(model: Llama, n: int = 24, calculator: bool = False) -> dict[str, float]:
    """Share of exact first follow-up questions, for train and held-out people (and with `calculator`,
    calc_probe)."""
    from make_kb import world
    from selfask_common import ASK, KINDS, STOP, draw

    w = world()
    rng = random.Random(1)
    out = {}
    for label, pool in (("train", w.train), ("heldout", w.heldout)):
        ok = 0
        for i in range(n):
            ex = draw(w, rng, pool, KINDS[i % len(KINDS)])
            text = greedy(model, PROMPT + "\n\nQuestion: " + ex.question + ASK, STOP, 80)
            ok += text == " Yes.\nFollow up: " + ex.steps[0][0]
        out[label] = ok / n
    if calculator:
        out.update(calc_probe(model, w, rng, n))
    return out


def calc_probe(model: Llama, w, rng: random.Random, n: int) -> dict[str, float]:
    """Held-out people, the scratchpad right up to the arithmetic: the share of exact "Calculate X - Y"
    lines (copying two numbers), and of exact final ages after the calculator's result."""
    from selfask_common import ASK, STOP, draw

    calc = final = 0
    for i in range(n):
        ex = draw(w, rng, w.heldout, ("born_first", "lived_longer", "age_when")[i % 3], calculator=True)
        pad = PROMPT + "\n\nQuestion: " + ex.question + ASK + " Yes.\n"
        for question, observation in ex.steps[:-1]:
            pad += "Follow up: " + question + STOP + " " + observation + "\n"
        calc += greedy(model, pad, STOP, 80) == "Follow up: " + ex.steps[-1][0]
        if ex.kind == "age_when":
            pad += "Follow up: " + ex.steps[-1][0] + STOP + " " + ex.steps[-1][1] + "\n"
            final += greedy(model, pad, "\n", 40).strip() == "So the final answer is: " + ex.answer
    return {"calc_heldout": calc / n, "age_final_heldout": final / max(1, len(range(2, n, 3)))}


def mirror_kb(question: str, facts: dict, country_of: dict) -> str:
    """The kb's answer for our own follow-up phrasings (anything else: not found)."""
    from selfask_common import kb_answer

    if question.startswith("Calculate "):  # the calculator's job: "X - Y"
        x, _, y = question[len("Calculate "):].partition(" - ")
        return str(int(x) - int(y)) if x.strip().isdigit() and y.strip().isdigit() else "Error: bad expression"
    for name, p in facts.items():
        if name in question:
            field = "born" if question.startswith("When") else "city" if question.startswith("Where") else \
                "age_at_death"
            return kb_answer(name, field, getattr(p, field))
    for city, country in country_of.items():
        if city in question:
            return kb_answer(city, "country", country)
    return f'No entry found for "{question}"'


# ---- main ---------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=HERE / "build" / "corpus.jsonl")
    ap.add_argument("--out", type=Path, default=MODEL_FILE)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--decay", type=float, default=0.25, help="share of the steps spent decaying the lr")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--qtype", choices=["f32", "f16", "q8_0"], default="q8_0")
    ap.add_argument("--dim", type=int, default=Config.dim)
    ap.add_argument("--hidden", type=int, default=Config.hidden)
    ap.add_argument("--layers", type=int, default=Config.layers)
    ap.add_argument("--heads", type=int, default=Config.heads)
    ap.add_argument("--kv-heads", type=int, default=Config.kv_heads)
    ap.add_argument("--check", type=int, default=40, help="held-out questions checked in torch at the end")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--probe-every", type=int, default=0, help="check follow-up copying every N steps")
    ap.add_argument("--save", type=Path, help="also save the torch state dict here")
    ap.add_argument("--init", type=Path, help="start from a state saved by --save (resume with a new schedule)")
    args = ap.parse_args()

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    rng = random.Random(SEED * 1000 + 3)

    cfg = Config(dim=args.dim, hidden=args.hidden, layers=args.layers, heads=args.heads, kv_heads=args.kv_heads)
    with args.corpus.open(encoding="utf-8") as f:
        rows = [encode(json.loads(line)) for line in f]
    longest = max(len(t) for t, _ in rows)
    calculator = any(b"Calculate " in bytes(t for t in tok if t < 256) for tok, _ in rows[:200])
    if longest > cfg.ctx:
        sys.exit(f"an example has {longest} tokens, over the context of {cfg.ctx}")
    model = Llama(cfg)
    if args.init:
        model.load_state_dict(torch.load(args.init)["state"])
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {asdict(cfg)}, {n_params} parameters; corpus: {len(rows)} examples; torch {torch.__version__}, "
          f"{args.threads} threads", flush=True)

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))

    decay_from = int(args.steps * (1 - args.decay))

    def lr_at(step: int) -> float:
        """Linear warm-up, constant, then a cosine decay to 5% over the last `--decay` of the steps."""
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        if step < decay_from:
            return args.lr
        progress = (step - decay_from) / max(1, args.steps - decay_from)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    start = time.time()
    seen = 0
    running = None
    data = batches(rows, args.batch, rng)
    model.train()
    for step in range(args.steps):
        x, y, m = next(data)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        logits = model(x)
        loss = (F.cross_entropy(logits.reshape(-1, cfg.vocab), y.reshape(-1), reduction="none") * m.reshape(-1)).sum()
        loss = loss / m.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += x.numel()
        value = float(loss.detach())
        running = value if running is None else 0.95 * running + 0.05 * value
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            spent = time.time() - start
            print(f"step {step + 1}/{args.steps}  loss {running:.4f}  lr {lr_at(step):.2e}  "
                  f"{spent:.0f}s  {seen / spent:.0f} tok/s", flush=True)
        if args.probe_every and (step + 1) % args.probe_every == 0:
            model.eval()
            print(f"  probe: {probe(model, calculator=calculator)}", flush=True)
            if args.save:  # a checkpoint: --init resumes from it should the run be cut short
                torch.save({"config": asdict(cfg), "state": model.state_dict(), "step": step + 1}, args.save)
            model.train()
    train_seconds = time.time() - start
    model.eval()
    meta = {"seed": SEED, "steps": args.steps, "batch": args.batch, "lr": args.lr, "warmup": args.warmup,
            "threads": args.threads, "decay": args.decay, "torch": torch.__version__, "params": n_params,
            "examples": len(rows),
            "final_loss": round(running or 0.0, 4), "qtype": args.qtype}
    export_gguf(model, args.out, args.qtype, meta)
    if args.save:
        torch.save({"config": asdict(cfg), "state": model.state_dict()}, args.save)
    print(f"trained in {train_seconds:.0f}s; wrote {args.out} ({args.out.stat().st_size} bytes, {args.qtype})")
    if args.check:
        print(f"held-out check in torch ({args.check} questions): {quick_eval(model, args.check)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
