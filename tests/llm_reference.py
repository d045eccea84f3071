"""Reference pieces for plugins/llm-local: a llama forward pass in numpy, a GPT-2 style byte-level BPE
tokenizer, and writers of small random llama models in GGUF (through the `gguf` package, llama.cpp's own
writer and quantizers).

The forward pass follows the Hugging Face layout and conventions (rotate_half RoPE, which pairs
dimension i with i + head_dim/2); the GGUF files are written the way llama.cpp's convert_hf_to_gguf.py
writes them, with the rows of q_proj and k_proj permuted so that llama.cpp's adjacent-pair RoPE computes
the same thing. A plug-in that gets the pairing wrong therefore disagrees with this reference.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
import regex
from gguf import GGMLQuantizationType as QT
from gguf.quants import dequantize, quantize

# ---- tokenizer ----------------------------------------------------------------------------------

GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
DIGIT = regex.compile(r"\p{N}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable characters."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


BYTE_CHAR = bytes_to_unicode()
CHAR_BYTE = {c: b for b, c in BYTE_CHAR.items()}


def pre_tokenize(text: str, digits: bool) -> list[str]:
    """The GPT-2 pattern; with `digits` (tokenizer.ggml.pre = smollm) every digit is split off first."""
    pieces: list[str] = []
    parts = regex.split(r"(\p{N})", text) if digits else [text]
    for part in parts:
        if part:
            pieces.extend(GPT2_PATTERN.findall(part))
    return pieces


@dataclass
class Bpe:
    """A byte-level BPE vocabulary: tokens (ids are positions), token types, merges ("a b", by rank)."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    digits: bool = True
    ids: dict[str, int] = field(init=False)
    ranks: dict[tuple[str, str], int] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(self.merges)}  # type: ignore[misc]

    def _word(self, piece: str) -> list[int]:
        word = [BYTE_CHAR[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(itertools.pairwise(word))]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            word[i:i + 2] = [word[i] + word[i + 1]]
        return [self.ids[w] for w in word]

    def encode(self, text: str, special: bool = False) -> list[int]:
        out: list[int] = []
        names = [t for t, k in zip(self.tokens, self.types, strict=True) if k == 3] if special else []
        chunks = regex.split("(" + "|".join(regex.escape(n) for n in names) + ")", text) if names else [text]
        for chunk in chunks:
            if chunk in names:
                out.append(self.ids[chunk])
            elif chunk:
                for piece in pre_tokenize(chunk, self.digits):
                    out.extend(self._word(piece))
        return out

    def decode(self, ids: list[int]) -> str:
        data = bytearray()
        for i in ids:
            if self.types[i] == 3:
                continue
            data.extend(bytes(CHAR_BYTE[c] for c in self.tokens[i]))
        return data.decode("utf-8", errors="replace")

    def chatml(self, messages: list[dict[str, str]], system: str | None = None) -> list[int]:
        """<|im_start|>role\\ncontent<|im_end|>\\n per message, then <|im_start|>assistant\\n."""
        start, end = self.ids["<|im_start|>"], self.ids["<|im_end|>"]
        if system is not None and (not messages or messages[0]["role"] != "system"):
            messages = [{"role": "system", "content": system}, *messages]
        out: list[int] = []
        for m in messages:
            out += [start, *self.encode(f"{m['role']}\n{m['content']}"), end, *self.encode("\n")]
        return [*out, start, *self.encode("assistant\n")]


def train_bpe(corpus: str, n_merges: int, digits: bool = True) -> Bpe:
    """A tiny byte-level BPE: the special tokens, the 256 byte characters, then `n_merges` merges learnt
    from `corpus` (most frequent pair first, ties by first appearance)."""
    tokens = [*SPECIALS, *(BYTE_CHAR[b] for b in range(256))]
    types = [3] * len(SPECIALS) + [1] * 256
    words = Counter(tuple(BYTE_CHAR[b] for b in p.encode()) for p in pre_tokenize(corpus, digits))
    merges: list[str] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for a, b in itertools.pairwise(word):
                pairs[a, b] += count
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: kv[1])
        merges.append(f"{a} {b}")
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(1)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return Bpe(tokens, types, merges, digits)


TINY_CORPUS = (
    "the quick brown fox jumps over the lazy dog. the dog sleeps; the fox runs away! "
    "hello world, hello there. it's the end of the world as we know it, and I feel fine. "
    "they're here and we've seen them, you'll see. numbers like 12345 and 2024 are split. "
    "the fox's den, the dog's bone, the world's end: that's it, what's new? "
    "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\nhello there<|im_end|>\n"
)


def tiny_bpe() -> Bpe:
    return train_bpe(TINY_CORPUS, 48)


@dataclass
class Spm:
    """A tiny SentencePiece-style vocabulary (tokenizer.ggml.model = llama): <unk> <s> </s>, the 256 byte
    tokens <0xXX>, then pieces whose scores order the merges (higher first)."""

    tokens: list[str]
    scores: list[float]
    types: list[int]

    @property
    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, text: str) -> list[int]:
        """SentencePiece BPE: spaces as U+2581 with one in front, the best-scoring adjacent pair merged
        first (leftmost among equals), unknown pieces as their UTF-8 bytes."""
        ids = self.ids
        symbols = list("\u2581" + text.replace(" ", "\u2581"))
        while True:
            best = None
            for i in range(len(symbols) - 1):
                merged = symbols[i] + symbols[i + 1]
                if merged in ids and (best is None or self.scores[ids[merged]] > best[0]):
                    best = (self.scores[ids[merged]], i)
            if best is None:
                break
            i = best[1]
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        out: list[int] = []
        for sym in symbols:
            out += [ids[sym]] if sym in ids else [ids[f"<0x{b:02X}>"] for b in sym.encode()]
        return out


def tiny_spm() -> Spm:
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    types = [2, 3, 3] + [6] * 256
    pieces = ["\u2581", "h", "e", "l", "o", "w", "r", "d", "t", "\u2581h", "he", "\u2581he", "ll", "llo",
              "\u2581hello", "\u2581w", "or", "ld", "\u2581wor", "\u2581world", "\u2581t", "\u2581the"]
    scores = [0.0] * len(tokens) + [-float(i) for i in range(len(pieces))]
    # merged pieces score higher than their parts
    for i, piece in enumerate(pieces):
        if len(piece) > 1:
            scores[len(tokens) + i] = float(len(piece))
    return Spm([*tokens, *pieces], scores, [*types, *[1] * len(pieces)])


# ---- models -------------------------------------------------------------------------------------

@dataclass
class Config:
    dim: int = 64
    hidden: int = 160
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 0  # 0: the tokenizer's size
    ctx: int = 256
    rope_base: float = 10000.0
    eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


def random_weights(cfg: Config, seed: int) -> dict[str, np.ndarray]:
    """HF-layout weights (out_features, in_features), scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    hd = cfg.head_dim

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w: dict[str, np.ndarray] = {"embed": rng.standard_normal((cfg.vocab, cfg.dim)).astype(np.float32),
                                "norm": norm(cfg.dim), "lm_head": mat(cfg.vocab, cfg.dim)}
    for i in range(cfg.layers):
        w |= {f"{i}.attn_norm": norm(cfg.dim), f"{i}.ffn_norm": norm(cfg.dim),
              f"{i}.q": mat(cfg.heads * hd, cfg.dim), f"{i}.k": mat(cfg.kv_heads * hd, cfg.dim),
              f"{i}.v": mat(cfg.kv_heads * hd, cfg.dim), f"{i}.o": mat(cfg.dim, cfg.heads * hd),
              f"{i}.gate": mat(cfg.hidden, cfg.dim), f"{i}.up": mat(cfg.hidden, cfg.dim),
              f"{i}.down": mat(cfg.dim, cfg.hidden)}
    return w


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's permutation of q_proj / k_proj rows (HF rotate_half -> adjacent pairs)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAMES = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate", "up": "ffn_up",
              "down": "ffn_down", "attn_norm": "attn_norm", "ffn_norm": "ffn_norm"}


def write_gguf(path: Path, cfg: Config, w: dict[str, np.ndarray], bpe: Bpe, qtype: QT, *,
               tie: bool = False, embed_type: QT | None = None, chat_template: str | None = None,
               pre: str = "smollm", spm: Spm | None = None) -> dict[str, np.ndarray]:
    """Writes the model; returns the weights as the file holds them, dequantised, in HF layout (what the
    reference computes with). `spm`: a SentencePiece vocabulary instead of the BPE one."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("llm-local test model")
    writer.add_context_length(cfg.ctx)
    writer.add_embedding_length(cfg.dim)
    writer.add_block_count(cfg.layers)
    writer.add_feed_forward_length(cfg.hidden)
    writer.add_head_count(cfg.heads)
    writer.add_head_count_kv(cfg.kv_heads)
    writer.add_rope_freq_base(cfg.rope_base)
    writer.add_layer_norm_rms_eps(cfg.eps)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_vocab_size(cfg.vocab)
    if spm is not None:
        writer.add_tokenizer_model("llama")
        writer.add_token_list(spm.tokens)
        writer.add_token_scores(spm.scores)
        writer.add_token_types(spm.types)
        writer.add_unk_token_id(0)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_add_bos_token(True)
        writer.add_add_space_prefix(True)
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(bpe.tokens)
        writer.add_token_types(bpe.types)
        writer.add_token_merges(bpe.merges)
        writer.add_bos_token_id(bpe.ids["<|im_start|>"])
        writer.add_eos_token_id(bpe.ids["<|im_end|>"])
        writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)
    held: dict[str, np.ndarray] = {}

    def put(name: str, array: np.ndarray, kind: QT) -> np.ndarray:
        if array.ndim == 1 or kind == QT.F32:
            writer.add_tensor(name, array.astype(np.float32))
            return array.astype(np.float32)
        data = quantize(array, kind)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=kind)
        return dequantize(data, kind).astype(np.float32).reshape(array.shape)

    held["embed"] = put("token_embd.weight", w["embed"], embed_type or qtype)
    held["norm"] = put("output_norm.weight", w["norm"], QT.F32)
    held["lm_head"] = held["embed"] if tie else put("output.weight", w["lm_head"], qtype)
    for i in range(cfg.layers):
        for key, name in GGUF_NAMES.items():
            array = w[f"{i}.{key}"]
            heads = {"q": cfg.heads, "k": cfg.kv_heads}.get(key)
            if heads:
                stored = put(f"blk.{i}.{name}.weight", permute(array, heads), qtype)
                # undo the permutation on what the file holds: back to HF layout
                held[f"{i}.{key}"] = stored.reshape(heads, stored.shape[0] // heads // 2, 2, -1) \
                    .swapaxes(1, 2).reshape(stored.shape)
            else:
                held[f"{i}.{key}"] = put(f"blk.{i}.{name}.weight", array, qtype if array.ndim == 2 else QT.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return held


def make_model(path: Path, qtype: QT, seed: int = 0, cfg: Config | None = None, bpe: Bpe | None = None,
               **kwargs: object) -> tuple[Config, dict[str, np.ndarray], Bpe]:
    bpe = bpe or tiny_bpe()
    cfg = cfg or Config()
    if not cfg.vocab:
        spm = kwargs.get("spm")
        cfg.vocab = len(spm.tokens) if isinstance(spm, Spm) else len(bpe.tokens)
    held = write_gguf(path, cfg, random_weights(cfg, seed), bpe, qtype, **kwargs)  # type: ignore[arg-type]
    return cfg, held, bpe


# ---- the forward pass ---------------------------------------------------------------------------

def quantize_act(x: np.ndarray) -> np.ndarray:
    """llm-local's 16-bit activation blocks (d = max|x| / 32767 per 32 values, q = round half away
    from zero), dequantised: what its quantised matmuls multiply the weights with."""
    blocks = x.reshape(*x.shape[:-1], -1, 32).astype(np.float32)
    d = np.abs(blocks).max(axis=-1, keepdims=True) / np.float32(32767)
    inv = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, 1, d))
    v = blocks * inv
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return (q * d).reshape(x.shape)


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + eps) * w).astype(np.float32)


def rope_hf(x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """HF's apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, x of shape (T, heads, head_dim)."""
    hd = x.shape[-1]
    inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    angles = positions[:, None].astype(np.float64) * inv[None, :]
    cos = np.concatenate([np.cos(angles)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, -1)[:, None, :]
    half = hd // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return (x * cos + rotated * sin).astype(np.float32)


def forward(cfg: Config, w: dict[str, np.ndarray], tokens: list[int], quantized_acts: bool = False) -> np.ndarray:
    """Logits of every position, shape (len(tokens), vocab). `quantized_acts` rounds the input of each
    matmul as a quantised-weight kernel does (for an exact comparison)."""
    hd, t = cfg.head_dim, len(tokens)
    group = cfg.heads // cfg.kv_heads
    act = quantize_act if quantized_acts else (lambda a: a)

    def lin(x: np.ndarray, key: str) -> np.ndarray:
        return (act(x).astype(np.float64) @ w[key].T.astype(np.float64)).astype(np.float32)

    pos = np.arange(t)
    x = w["embed"][tokens].astype(np.float32)
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(cfg.layers):
        h = rmsnorm(x, w[f"{i}.attn_norm"], cfg.eps)
        q = rope_hf(lin(h, f"{i}.q").reshape(t, cfg.heads, hd), pos, cfg.rope_base)
        k = rope_hf(lin(h, f"{i}.k").reshape(t, cfg.kv_heads, hd), pos, cfg.rope_base)
        v = lin(h, f"{i}.v").reshape(t, cfg.kv_heads, hd)
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        out = np.einsum("hqk,khd->qhd", scores, v.astype(np.float64)).reshape(t, cfg.heads * hd).astype(np.float32)
        x = x + lin(out, f"{i}.o")
        h = rmsnorm(x, w[f"{i}.ffn_norm"], cfg.eps)
        g, u = lin(h, f"{i}.gate"), lin(h, f"{i}.up")
        x = x + lin((g / (1 + np.exp(-g.astype(np.float64)))).astype(np.float32) * u, f"{i}.down")
    x = rmsnorm(x, w["norm"], cfg.eps)
    return lin(x, "lm_head")


def greedy(cfg: Config, w: dict[str, np.ndarray], tokens: list[int], n: int) -> list[int]:
    """n tokens of greedy decoding (no stopping)."""
    out = list(tokens)
    for _ in range(n):
        out.append(int(np.argmax(forward(cfg, w, out)[-1])))
    return out[len(tokens):]


def load_gguf(path: Path) -> tuple[Config, dict[str, np.ndarray]]:
    """A llama GGUF file read back with the `gguf` package: its config and dequantised HF-layout weights."""
    reader = gguf.GGUFReader(str(path))

    def meta(key: str, default: float | None = None) -> float:
        f = reader.fields.get(key)
        if f is None:
            assert default is not None, key
            return default
        return f.contents()

    cfg = Config(dim=int(meta("llama.embedding_length")), hidden=int(meta("llama.feed_forward_length")),
                 layers=int(meta("llama.block_count")), heads=int(meta("llama.attention.head_count")),
                 kv_heads=int(meta("llama.attention.head_count_kv")), ctx=int(meta("llama.context_length")),
                 rope_base=float(meta("llama.rope.freq_base", 10000.0)),
                 eps=float(meta("llama.attention.layer_norm_rms_epsilon", 1e-5)))
    tensors = {}
    for t in reader.tensors:
        shape = [int(n) for n in reversed(t.shape)]
        tensors[t.name] = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
    cfg.vocab = tensors["token_embd.weight"].shape[0]
    w = {"embed": tensors["token_embd.weight"], "norm": tensors["output_norm.weight"],
         "lm_head": tensors.get("output.weight", tensors["token_embd.weight"])}
    for i in range(cfg.layers):
        for key, name in GGUF_NAMES.items():
            array = tensors[f"blk.{i}.{name}.weight"]
            heads = {"q": cfg.heads, "k": cfg.kv_heads}.get(key)
            if heads:
                array = array.reshape(heads, array.shape[0] // heads // 2, 2, -1).swapaxes(1, 2).reshape(array.shape)
            w[f"{i}.{key}"] = array
    return cfg, w
