"""Mixed precision: bf16 weights over exact fp32 masters, the same AdamW update as in fp32."""
import pytest
import torch

import lab.train as train_module
from lab.engine.device import cpu_has_native_bf16
from lab.engine.precision import MasterWeights, _join, _split
from lab.records import Conversation
from lab.train import TrainConfig, train

DATA = [Conversation.single(f"What is {a} times {b}?", f"{a} times {b} is {a * b}.")
        for a in range(4) for b in range(4)]

# bf16 matrix work is emulated (slow) where the CPU lacks avx512_bf16/AMX: the full suite only
SLOW_WHERE_BF16_IS_EMULATED = pytest.mark.slow if not cpu_has_native_bf16() else pytest.mark.bf16_native


def test_split_and_join_are_exact():
    x = torch.randn(10_000) * torch.logspace(-30, 30, 10_000)
    x[:5] = torch.tensor([float("inf"), -float("inf"), 0.0, -0.0, 1e-45])
    hi, lo = torch.empty_like(x, dtype=torch.bfloat16), torch.empty_like(x, dtype=torch.int16)
    bits, back = torch.empty_like(x, dtype=torch.int32), torch.empty_like(x)
    _split(x, hi, lo, bits)
    _join(hi, lo, back, bits)
    assert torch.equal(back.view(torch.int32), x.view(torch.int32))
    # the bf16 half is the fp32 value truncated: never more than one bf16 step away, never past it
    finite = x.isfinite() & (x.abs() > 1e-37)  # normal numbers
    err = (x - hi.float())[finite]
    assert torch.all(err * torch.sign(x[finite]) >= 0)
    assert torch.all(err.abs() <= x[finite].abs() * 2 ** -7)


def _clip(params, max_norm):
    """clip_grad_norm_ with the norm in float64 (torch's own is off by ~4e-5 here)."""
    norm = sum(float(p.grad.double().square().sum()) for p in params) ** 0.5
    for p in params:
        p.grad.mul_(min(1.0, max_norm / (norm + 1e-6)))


def _set_grads(params, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=g) * 0.01).to(p.dtype)


@pytest.mark.parametrize("max_grad_norm", [0.0, 1e-3])
def test_bf16_step_is_the_fp32_adamw_step(tiny_both, max_grad_norm):
    """Masters after a step equal fp32 AdamW (+ clipping) fed the same (bf16) gradients."""
    model, _ = tiny_both
    ref = [p.detach().clone().requires_grad_() for p in model.parameters()]
    with MasterWeights(model, torch.bfloat16, lr=1e-3, weight_decay=0.1,
                       max_grad_norm=max_grad_norm) as w:
        assert all(p.dtype == torch.bfloat16 for p in model.parameters())
        for _ in range(2):
            _set_grads(w.params)
            w.step(1e-3)
            assert all(not p.grad.any() for p in model.parameters())  # zeroed, kept for the next
    opt = torch.optim.AdamW([{"params": [p for p in ref if p.dim() >= 2], "weight_decay": 0.1},
                             {"params": [p for p in ref if p.dim() < 2], "weight_decay": 0.0}],
                            lr=1e-3)
    for _ in range(2):
        _set_grads(ref)
        for p in ref:
            p.grad = p.grad.bfloat16().float()
        if max_grad_norm:
            _clip(ref, max_grad_norm)
        opt.step()
    for p, r in zip(model.parameters(), ref):
        assert p.dtype == torch.float32
        torch.testing.assert_close(p, r, rtol=1e-6, atol=1e-8)


def test_weights_come_back_fp32_and_unchanged_after_an_error(tiny):
    model, _ = tiny
    before = [p.detach().clone() for p in model.parameters()]
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    with pytest.raises(RuntimeError):
        with MasterWeights(model, torch.bfloat16, lr=1e-3):
            raise RuntimeError("interrupted")
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied


def test_split_failing_midway_leaves_the_model_as_it_was(tiny, monkeypatch):
    import lab.engine.precision as precision

    model, _ = tiny
    before = [p.detach().clone() for p in model.parameters()]
    calls = []

    def failing_split(*args):
        calls.append(1)
        if len(calls) == 5:
            raise MemoryError("simulated")
        _split(*args)

    monkeypatch.setattr(precision, "_split", failing_split)
    with pytest.raises(MemoryError):
        with MasterWeights(model, torch.bfloat16, lr=1e-3):
            pass
    assert all(p.dtype == torch.float32 and p.grad is None for p in model.parameters())
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_plain_path_keeps_the_weights_dtype(tiny, dtype):
    """Without the split (weights not fp32, or no bf16 hardware) AdamW runs in the weights' dtype."""
    model, _ = tiny
    model.to(dtype)
    with MasterWeights(model, torch.bfloat16, lr=1e-3) as w:
        assert not w.split
        _set_grads(w.params)
        w.step(1e-3)
    assert all(p.dtype == dtype and p.grad is None for p in model.parameters())


def test_fp32_path_is_plain_adamw(tiny):
    model, _ = tiny
    ref = [p.detach().clone().requires_grad_() for p in model.parameters()]
    with MasterWeights(model, None, lr=1e-3, max_grad_norm=1e-3) as w:
        assert not w.split and all(p.dtype == torch.float32 for p in model.parameters())
        _set_grads(w.params)
        w.step(1e-3)
    opt = torch.optim.AdamW(ref, lr=1e-3, weight_decay=0.0)
    _set_grads(ref)
    _clip(ref, 1e-3)
    opt.step()
    for p, r in zip(model.parameters(), ref):
        torch.testing.assert_close(p, r, rtol=1e-6, atol=1e-8)


@SLOW_WHERE_BF16_IS_EMULATED  # 20 bf16 steps: 35-50 s per backend where bf16 is emulated
def test_training_in_bf16_lowers_the_loss_and_leaves_fp32(tiny_both, monkeypatch):
    """The bf16 path on any machine (where bf16 is emulated it is only slower)."""
    monkeypatch.setattr(train_module, "autocast_dtype", lambda device: torch.bfloat16)
    model, tok = tiny_both
    result = train(model, tok, DATA, TrainConfig(max_steps=20, lr=3e-3, warmup_ratio=0, eval_split=0))
    losses = [h["loss"] for h in result.history]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    assert all(p.dtype == torch.float32 and p.grad is None for p in model.parameters())
