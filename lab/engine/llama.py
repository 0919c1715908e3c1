"""Llama-family decoders (SmolLM2 among them) in plain PyTorch: the lab's fast path.

Same parameter names, `config.json` and maths as transformers' `LlamaForCausalLM` (a test checks
that the logits agree), so folders move both ways: `from_folder` reads an HF folder and
`save_pretrained` writes one that `AutoModelForCausalLM.from_pretrained` loads. The lab keeps its
own class for speed: importing transformers' modelling code takes about 4 s, more than the whole
start-up budget, and its general forward (masks built for every layout, a KV cache grown by
concatenation) costs a small model much of its training and decoding time.

It covers what the lab needs: training forwards (right padding, causal attention only), scoring
and cached decoding with left padding. Other architectures load through transformers.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import write_json
from . import torch_ops

WEIGHTS = "model.safetensors"


def supports(config: dict) -> bool:
    """True for configs this module computes exactly: Llama, SiLU, plain RoPE, no tensor split."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return (config.get("model_type") == "llama" and config.get("hidden_act", "silu") == "silu"
            and rope.get("rope_type", rope.get("type", "default")) == "default"
            and config.get("pretraining_tp", 1) == 1)


class Config(SimpleNamespace):
    """The fields of an HF `config.json`, as attributes (`cfg.hidden_size`), plus `to_dict()`."""

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "name_or_path"}


def head_dim(cfg: Config) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def inv_freq(cfg: Config) -> torch.Tensor:
    """RoPE frequencies; `rope_theta` sits in `rope_parameters` (transformers 5) or at the top."""
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
    d = head_dim(cfg)
    return 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d)


def _grad_in_place(weight: torch.Tensor, dtype: torch.dtype) -> bool:
    """True when `weight`'s gradient can be added straight into its `.grad` by the backward
    product: a leaf with a gradient of the compute dtype already there (in training, see
    `precision.MasterWeights`). Only for `backward()`: `torch.autograd.grad` would not see it."""
    return weight.is_leaf and weight.grad is not None and weight.grad.dtype == dtype


def _add_weight_grad(weight: torch.Tensor, grad_out: torch.Tensor, x: torch.Tensor):
    """d loss / d weight of `x @ weight.T`: added into `weight.grad` in place when it can be
    (one product, no (out x in) temporary, no second pass to add it), else returned."""
    g, a = grad_out.flatten(0, -2), x.flatten(0, -2)
    if _grad_in_place(weight, g.dtype):
        weight.grad.addmm_(g.T, a)
        return None
    return g.T @ a


class LinearFunction(torch.autograd.Function):
    """x @ weight.T whose weight gradient goes straight into `weight.grad` (`_add_weight_grad`):
    what autograd would do with a temporary and an extra pass over the weight's size."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return x @ weight.T

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_x = grad_out @ weight if ctx.needs_input_grad[0] else None
        return grad_x, _add_weight_grad(weight, grad_out, x)


class Linear(nn.Module):
    """`nn.Linear` without its initialisation, which loading overwrites anyway and which, on the
    meta device, imports torch's compiler (about 2 s of start-up). Inside
    `LlamaLM.packed_weights()` no-grad forwards use a oneDNN-packed copy of the weight; in
    training its gradient is added into `.grad` in place (`LinearFunction`)."""

    def __init__(self, n_in: int, n_out: int, bias: bool = False, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in, device=device))
        self.bias = nn.Parameter(torch.zeros(n_out, device=device)) if bias else None
        self.packed: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None and not torch.is_grad_enabled():
            return torch_ops.packed_linear(x, self.packed, self.weight, self.bias)
        if (self.bias is None and torch.is_grad_enabled() and self.weight.requires_grad
                and _grad_in_place(self.weight, x.dtype)):
            return LinearFunction.apply(x, self.weight)
        return F.linear(x, self.weight, self.bias)


class SparseLookup(torch.autograd.Function):
    """`F.embedding` whose weight gradient is sparse: one row per distinct token, its uses
    summed in fp32 first. Autograd adds it into an existing dense `.grad` in place, each row
    once (adding every use on its own into a bf16 gradient loses much of the small ones)."""

    @staticmethod
    def forward(ctx, ids, weight, padding_idx):
        ctx.save_for_backward(ids)
        ctx.shape, ctx.padding_idx = weight.shape, padding_idx
        return F.embedding(ids, weight)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        ids, grad = ids.reshape(-1), grad.reshape(-1, grad.shape[-1])
        if ctx.padding_idx is not None:  # the pad row gets no gradient from its uses as input
            keep = ids != ctx.padding_idx
            ids, grad = ids[keep], grad[keep]
        rows, where = torch.unique(ids, return_inverse=True)
        sums = grad.new_zeros(len(rows), grad.shape[1], dtype=torch.float32)
        sums.index_add_(0, where, grad.float())
        return None, torch.sparse_coo_tensor(rows[None], sums.to(grad.dtype), ctx.shape,
                                             is_coalesced=True, check_invariants=False), None


class Embedding(nn.Module):
    """Token embeddings. As in transformers, the pad token's row gets no gradient from its uses
    as an input (`padding_idx`); with SmolLM2 that row is also <|im_end|>'s.

    Where the weight already has a gradient (as in training, see `precision.MasterWeights`),
    the lookup's gradient is sparse (`SparseLookup`), which autograd adds into it in place:
    the dense default is a zero-filled (vocabulary x hidden) tensor per forward (56 MB for
    SmolLM2 in bf16, 20 ms to fill and add; the sparse one under 1 ms). Only for
    `backward()`: `torch.autograd.grad` would hand back that sparse tensor."""

    def __init__(self, n: int, dim: int, padding_idx: int | None = None, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, dim, device=device))
        self.padding_idx = padding_idx

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.weight.grad is not None and torch.is_grad_enabled():
            return SparseLookup.apply(ids, self.weight, self.padding_idx)
        return F.embedding(ids, self.weight, self.padding_idx)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float):
    """weight * (x / rms(x)) and 1/rms(x); in fp32, cast back to x's dtype as transformers does.
    Each pass reads x as it is and writes the result in its final dtype: 3 passes, not 6."""
    acc = torch.promote_types(x.dtype, torch.float32)   # fp32 at least
    rstd = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=acc)
    rstd = rstd.square_().div_(x.shape[-1]).add_(eps).rsqrt_()
    return torch.mul(x, rstd, out=torch.empty_like(x)).mul_(weight), rstd


class RMSNormFunction(torch.autograd.Function):
    """`rms_norm` keeping only x and 1/rms(x) for the backward pass. Plain autograd keeps four
    (tokens x hidden) tensors per norm, two of them fp32: about a third of a training step's
    activation memory."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        y, rstd = rms_norm(x, weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, rstd = ctx.saved_tensors
        acc = rstd.dtype                                   # fp32 (fp64 for fp64 inputs)
        normed = x * rstd                                  # fp32
        grad_w = (grad_y * normed.to(x.dtype)).flatten(0, -2).sum(0, dtype=acc)
        g = grad_y * weight.to(acc)                        # fp32
        dot = torch.linalg.vecdot(g, normed).div_(x.shape[-1]).unsqueeze(-1)
        grad_x = torch.addcmul(g, normed, dot, value=-1)   # g - normed * mean(g * normed)
        return torch.mul(grad_x, rstd, out=torch.empty_like(x)), grad_w.to(weight.dtype), None


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size, device=device))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return RMSNormFunction.apply(x, self.weight, self.eps)
        return rms_norm(x, self.weight, self.eps)[0]


def rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding: x * cos + rotate_half(x) * sin, as transformers computes it,
    with rotate_half's minus sign kept in `signed_sin` (-sin, +sin halves): 3 passes, not 5."""
    half = x.shape[-1] // 2
    return torch.addcmul(x * cos, torch.cat((x[..., half:], x[..., :half]), dim=-1), signed_sin)


class KVCache:
    """Keys and values of every layer for the rows being decoded, grown in blocks, not per token."""

    BLOCK = 64

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.length = 0  # positions filled (the same for every layer once a forward is done)

    def add(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (B, kv_heads, T, D) keys/values for `layer`; return all of them so far."""
        start, new = self.length, k.shape[2]
        end = start + new
        buf_k = self.k[layer]
        if buf_k is None or buf_k.shape[2] < end:
            cap = math.ceil(end / self.BLOCK) * self.BLOCK + self.BLOCK
            grown_k = k.new_empty(k.shape[0], k.shape[1], cap, k.shape[3])
            grown_v = torch.empty_like(grown_k)
            if buf_k is not None:
                grown_k[:, :, :start] = buf_k[:, :, :start]
                grown_v[:, :, :start] = self.v[layer][:, :, :start]
            self.k[layer], self.v[layer] = grown_k, grown_v
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def batch_select_indices(self, idx: torch.Tensor) -> None:
        """Keep only the rows `idx` (finished replies leave the batch)."""
        self.k = [None if t is None else t[idx] for t in self.k]
        self.v = [None if t is None else t[idx] for t in self.v]

    def repeat_rows(self, rows: int) -> None:
        """From one row to `rows` equal copies of it (a prefix that every row starts with)."""
        n = self.length
        self.k = [None if t is None else t[:, :, :n].expand(rows, -1, -1, -1).contiguous() for t in self.k]
        self.v = [None if t is None else t[:, :, :n].expand(rows, -1, -1, -1).contiguous() for t in self.v]


class PrefixKV:
    """The keys and values of a prefix that every row of a batch starts with, for one forward pass
    of the rows (a `cache` to `Decoder.forward`): the prefix's own pass (one row) records them,
    the rows' pass puts them in front of each row's. Under autograd the rows' gradients flow back
    into the one prefix pass, summed over the rows (`expand`)."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.length = 0  # the prefix's length, once its pass is done

    def add(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.length:                          # the prefix's pass
            self.k[layer], self.v[layer] = k, v
            return k, v
        rows = (k.shape[0], -1, -1, -1)
        return (torch.cat((self.k[layer].expand(rows), k), dim=2),
                torch.cat((self.v[layer].expand(rows), v), dim=2))

    def advance(self, n: int) -> None:
        self.length += n


class CausalAttention(torch.autograd.Function):
    """Causal softmax(q k^T * scale) v for training forwards on a CPU, grouped-query heads
    included.

    Keeps what torch's flash kernel keeps (q, k, v, the output and each row's log-sum-exp) and
    recomputes the probabilities in the backward pass with plain matrix products. For the
    sequences the lab trains on (up to a few hundred tokens) that is faster on a CPU than the
    flash kernel, whose tiles are made for long sequences (the speed bench job: 29.0 s against 31.0 s
    with torch's SDPA; its flash forward with this backward: 30.6 s against 29.5 s).
    q: (B, H, T, D); k, v: (B, KV, S, D) with H a multiple of KV; query head h reads key/value
    head h // (H // KV). With S > T the queries are the last T positions (a shared prefix's keys
    and values come first, `PrefixKV`).
    """

    @staticmethod
    def _scores(qg, k, t):
        """Scores in fp32 (at least), the future masked out: (B, KV, G*t, S) for t queries, the
        last t of the S key positions (the first S - t are a prefix every query sees)."""
        keys = k.shape[2]
        s = (qg @ k.transpose(-1, -2)).to(torch.promote_types(qg.dtype, torch.float32))
        future = torch.ones(t, keys, dtype=torch.bool, device=s.device).triu_(1 + keys - t)
        return s.masked_fill_(future.repeat(qg.shape[2] // t, 1), float("-inf"))

    @staticmethod
    def forward(ctx, q, k, v, scale):
        b, h, t, d = q.shape
        # the scale goes on q (T x D) rather than on every score (T x T); grouped queries in rows
        qg = (q * scale).reshape(b, k.shape[1], h // k.shape[1] * t, d)
        s = CausalAttention._scores(qg, k, t)
        top = s.amax(-1, keepdim=True)
        p = s.sub_(top).exp_()                           # softmax in place: one exp per score
        total = p.sum(-1, keepdim=True)
        out = p.div_(total).to(q.dtype) @ v
        lse = total.log_().add_(top)
        ctx.save_for_backward(qg, k, v, out, lse)
        ctx.scale, ctx.shape = scale, q.shape
        return out.view(b, h, t, d)

    @staticmethod
    def backward(ctx, grad_out):
        qg, k, v, out, lse = ctx.saved_tensors
        dout = grad_out.reshape(out.shape)
        p = CausalAttention._scores(qg, k, ctx.shape[2]).sub_(lse).exp_()  # the forward's probabilities
        dv = p.to(v.dtype).transpose(-1, -2) @ dout
        delta = (dout.to(p.dtype) * out.to(p.dtype)).sum(-1, keepdim=True)
        ds = p.mul_((dout @ v.transpose(-1, -2)).to(p.dtype).sub_(delta)).to(qg.dtype)
        dq = (ds @ k).mul_(ctx.scale).view(ctx.shape)
        dk = ds.transpose(-1, -2) @ qg
        return dq, dk, dv, None


class Attention(nn.Module):
    def __init__(self, cfg: Config, device=None):
        super().__init__()
        h, d, kv = cfg.num_attention_heads, head_dim(cfg), cfg.num_key_value_heads
        bias = getattr(cfg, "attention_bias", False)
        self.heads, self.kv_heads, self.head_dim = h, kv, d
        self.q_proj = Linear(cfg.hidden_size, h * d, bias=bias, device=device)
        self.k_proj = Linear(cfg.hidden_size, kv * d, bias=bias, device=device)
        self.v_proj = Linear(cfg.hidden_size, kv * d, bias=bias, device=device)
        self.o_proj = Linear(h * d, cfg.hidden_size, bias=bias, device=device)

    def forward(self, x, cos, sin, mask, cache: KVCache | PrefixKV | None, layer: int):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.add(layer, k, v)
        gqa = self.heads != self.kv_heads
        if mask is None and _own_causal(x.device, t):
            out = CausalAttention.apply(q, k, v, 1.0 / math.sqrt(self.head_dim))
        elif mask is None:  # no cache, no padding in front of any token: plain causal attention
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class SwiGLU(torch.autograd.Function):
    """down(silu(x @ Wg.T) * (x @ Wu.T)), keeping only x, the gate and the up projections for
    the backward pass; the rest is recomputed there. Plain autograd would also keep silu(gate)
    and the product: two more (tokens x intermediate) tensors per layer, about 190 MB for a
    512-token micro-batch of SmolLM2-135M."""

    @staticmethod
    def forward(ctx, x, w_gate, w_up, w_down):
        gate, up = x @ w_gate.T, x @ w_up.T
        ctx.save_for_backward(x, w_gate, w_up, w_down, gate, up)
        return (F.silu(gate) * up) @ w_down.T

    @staticmethod
    def backward(ctx, grad_out):
        x, w_gate, w_up, w_down, gate, up = ctx.saved_tensors
        act = F.silu(gate)
        grad_h = grad_out @ w_down                        # d out / d (act * up)
        grad_w_down = _add_weight_grad(w_down, grad_out, act * up)
        grad_up = grad_h * act
        grad_gate = torch_ops.silu_backward(grad_h * up, gate)  # one fused pass
        grad_x = grad_gate @ w_gate + grad_up @ w_up
        grad_w_gate = _add_weight_grad(w_gate, grad_gate, x)
        grad_w_up = _add_weight_grad(w_up, grad_up, x)
        return grad_x, grad_w_gate, grad_w_up, grad_w_down


class MLP(nn.Module):
    def __init__(self, cfg: Config, device=None):
        super().__init__()
        bias = getattr(cfg, "mlp_bias", False)
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias, device=device)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias, device=device)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, bias=bias, device=device)

    def forward(self, x):
        if (self.gate_proj.bias is None and torch.is_grad_enabled()
                and not torch.is_autocast_enabled(x.device.type)):  # autocast: plain autograd
            return SwiGLU.apply(x, self.gate_proj.weight, self.up_proj.weight, self.down_proj.weight)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: Config, device=None):
        super().__init__()
        self.self_attn = Attention(cfg, device)
        self.mlp = MLP(cfg, device)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device)

    def forward(self, x, cos, sin, mask, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    """Embeddings, blocks and the final norm: `model.model` in HF's naming."""

    def __init__(self, cfg: Config, device=None):
        super().__init__()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size,
                                      getattr(cfg, "pad_token_id", None), device=device)
        self.layers = nn.ModuleList(Block(cfg, device) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device)
        self.register_buffer("inv_freq", inv_freq(cfg), persistent=False)

    def forward(self, input_ids, attention_mask=None, position_ids=None,
                cache: KVCache | PrefixKV | None = None,
                layers: slice = slice(None), hidden: torch.Tensor | None = None,
                **_ignored) -> SimpleNamespace:
        """`last_hidden_state`: the final norm's output (B, T, H). `layers` runs only those blocks,
        from `hidden` (what the blocks before returned as `hidden_state`) in place of the
        embeddings; the final norm runs when the last block does. So a caller can run the lower
        blocks once, with no graph, and the upper ones again and again (`lab.analysis.influence`)."""
        b, t = input_ids.shape
        past = cache.length if cache is not None else 0
        mask = _attention_mask(attention_mask, b, past, t, input_ids.device, _own_causal(input_ids.device, t))
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=input_ids.device).expand(b, t)
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]   # (B, T, D/2)
        x = self.embed_tokens(input_ids) if hidden is None else hidden
        cos = freqs.cos().repeat(1, 1, 2)[:, None].to(x.dtype)                  # (B, 1, T, D)
        sin = freqs.sin()
        sin = torch.cat((-sin, sin), dim=-1)[:, None].to(x.dtype)               # signed
        start, stop, _ = layers.indices(len(self.layers))
        for i in range(start, stop):
            x = self.layers[i](x, cos, sin, mask, cache, i)
        if cache is not None:
            cache.advance(t)
        last = self.norm(x) if stop == len(self.layers) else None
        return SimpleNamespace(last_hidden_state=last, hidden_state=x)


def _own_causal(device, t: int) -> bool:
    """Whether attention runs `CausalAttention` (training forwards on a CPU; a GPU's flash kernels
    are faster), which also takes a cached prefix without a mask."""
    return torch.is_grad_enabled() and device.type == "cpu" and t <= 1024


def _attention_mask(attention_mask, b: int, past: int, t: int, device, after_cache: bool = False):
    """None when causal attention alone is exact (no padding before a real token, and no cache
    unless `after_cache`: the attention then takes queries after cached keys), else a
    (B, 1, T, past+T) boolean mask: causal, padding keys hidden. Pad queries see themselves, so
    no softmax row is empty (an empty row would put NaN into the cache)."""
    total = past + t
    causal = past == 0 or after_cache
    if attention_mask is None:
        if causal:
            return None
        attention_mask = torch.ones(b, total, dtype=torch.bool, device=device)
    am = attention_mask.bool()
    if causal and bool((am[:, 1:] <= am[:, :-1]).all()):  # right padding or none
        return None
    q_pos = torch.arange(past, total, device=device)[:, None]
    k_pos = torch.arange(total, device=device)[None, :]
    mask = (k_pos <= q_pos)[None] & am[:, None, :total]
    mask |= (k_pos == q_pos)[None]
    return mask[:, None]


class LlamaLM(nn.Module):
    """A causal LM with the parts of transformers' API the lab uses: `model(...)`, `.config`,
    `.generation_config`, `.base_model`, `get_output_embeddings()`, `save_pretrained()`."""

    def __init__(self, cfg: Config, generation: dict | None = None, device=None):
        super().__init__()
        self.config = cfg
        self.generation_config = SimpleNamespace(**(generation or {
            "bos_token_id": getattr(cfg, "bos_token_id", None),
            "eos_token_id": getattr(cfg, "eos_token_id", None),
            "pad_token_id": getattr(cfg, "pad_token_id", None)}))
        self.model = Decoder(cfg, device)
        self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size, bias=False, device=device)
        if getattr(cfg, "tie_word_embeddings", False):
            self.lm_head.weight = self.model.embed_tokens.weight

    @property
    def base_model(self) -> Decoder:
        return self.model

    def get_output_embeddings(self) -> Linear:
        return self.lm_head

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache: bool = False, logits_to_keep: int = 0, **_ignored) -> SimpleNamespace:
        cache = past_key_values
        if use_cache and cache is None:
            cache = KVCache(len(self.model.layers))
        hidden = self.model(input_ids, attention_mask, position_ids, cache).last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return SimpleNamespace(logits=self.lm_head(hidden), past_key_values=cache)

    @torch.no_grad()
    def prefix_cache(self, prefix: torch.Tensor, rows: int) -> KVCache:
        """The keys and values of `prefix` (1, P), computed once, for `rows` rows that all begin
        with it: a chat template's system prompt, which every prompt of a batch repeats (24 of
        the ~50 tokens of a short SmolLM2 question). The rows then decode from position P on with
        this cache, as if each had run its prefix itself."""
        cache = KVCache(len(self.model.layers))
        self.model(prefix, cache=cache)
        cache.repeat_rows(rows)
        return cache

    def prefix_kv(self, prefix: torch.Tensor) -> "PrefixKV":
        """`prefix` (1, P) run once, for one forward pass of rows that all begin with it (scoring
        and training; `prefix_cache` is for decoding)."""
        kv = PrefixKV(len(self.model.layers))
        self.model(prefix, cache=kv)
        return kv

    @contextmanager
    def packed_weights(self, rows: int):
        """Within this block, no-grad forwards on the CPU use oneDNN-packed copies of the weights.

        Decoding a batch reads every weight once per token and is bound by memory; MKL's kernel
        for a few rows times a wide matrix (the 49k-word output layer above all) is slow there,
        oneDNN's packed one is not: a batch of 8 decodes about 1.5x faster, with the same
        tokens. The copies take as much memory as the weights, until the block ends. Elsewhere
        (GPU, no oneDNN) the block changes nothing.
        """
        linears = [m for m in self.modules() if isinstance(m, Linear)]
        try:
            if torch_ops.can_pack(self.lm_head.weight):
                for m in linears:
                    m.packed = torch_ops.pack_linear(m.weight, rows)
            yield self
        finally:
            for m in linears:
                m.packed = None

    def save_pretrained(self, path: str | Path, **_ignored) -> None:
        """config.json, generation_config.json and model.safetensors, as transformers writes them."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()
                 if not (k == "lm_head.weight" and getattr(self.config, "tie_word_embeddings", False))}
        save_file(state, str(path / WEIGHTS), metadata={"format": "pt"})
        cfg = {**self.config.to_dict(), "architectures": ["LlamaForCausalLM"], "dtype": "float32"}
        write_json(path / "config.json", cfg)
        write_json(path / "generation_config.json",
                   {k: v for k, v in vars(self.generation_config).items() if v is not None})


def read_config(folder: str | Path) -> dict | None:
    p = Path(folder) / "config.json"
    return json.loads(p.read_text()) if p.is_file() else None


def from_folder(folder: str | Path, name: str | None = None, config: dict | None = None) -> LlamaLM:
    """Load an HF Llama folder (config.json + model.safetensors) as fp32 on the CPU.
    `config`: its config.json when the caller has read it already."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg = Config(**(config or read_config(folder)))
    cfg.name_or_path = name or str(folder)
    gen_file = folder / "generation_config.json"
    generation = json.loads(gen_file.read_text()) if gen_file.is_file() else None
    model = LlamaLM(cfg, generation, device="meta")  # no time spent initialising weights

    try:
        raw = load_file(folder / WEIGHTS)
    except SafetensorError as err:
        raise ValueError(f"{folder / WEIGHTS} could not be read ({err}): the file is damaged or "
                         "incomplete; save or prepare the model again") from None
    state = {k: v.float() for k, v in raw.items()}
    tied = getattr(cfg, "tie_word_embeddings", False)
    if tied:
        state.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"{folder / WEIGHTS} does not fit its config.json: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def random_model(cfg: Config, seed: int = 0) -> LlamaLM:
    """Fresh weights as transformers initialises Llama: normal(0, 0.02), norms at one, the
    pad token's embedding at zero."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaLM(cfg)
        std = getattr(cfg, "initializer_range", 0.02)
        for m in model.modules():
            if isinstance(m, (Linear, Embedding)):
                nn.init.normal_(m.weight, std=std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        pad = model.model.embed_tokens.padding_idx
        if pad is not None:  # as transformers does: the pad token's row starts at zero
            with torch.no_grad():
                model.model.embed_tokens.weight[pad].zero_()
    return model.eval()
