"""The lab's own Llama class computes what transformers' LlamaForCausalLM computes, in every
layout the lab uses (no padding, right padding, left padding, cached decoding), and its folders
load in transformers."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from lab import models
from lab.engine import llama
from lab.runs import save_model

PAD = 2


def rows(tok):
    texts = ["Hello there, how are you doing today?", "Paris is", "A much longer third line of "
             "text, so that the batch needs a good deal of padding on the short rows."]
    return [tok(t)["input_ids"] for t in texts]


def padded(ids, left: bool):
    width = max(map(len, ids))
    fill = [[PAD] * (width - len(r)) for r in ids]
    ones = [[1] * len(r) for r in ids]
    zeros = [[0] * (width - len(r)) for r in ids]
    if left:
        return (torch.tensor([f + r for f, r in zip(fill, ids)]),
                torch.tensor([z + o for z, o in zip(zeros, ones)]))
    return (torch.tensor([r + f for f, r in zip(fill, ids)]),
            torch.tensor([o + z for z, o in zip(zeros, ones)]))


def pair(model, tok, path):
    save_model(model, tok, path)
    return models.load_model(str(path))[0], AutoModelForCausalLM.from_pretrained(path).eval()


def assert_same(lab_model, hf_model, tok, atol):
    ids = rows(tok)
    with torch.no_grad():
        for left in (False, True):
            x, mask = padded(ids, left)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            a = lab_model(x, attention_mask=mask, position_ids=pos).logits
            b = hf_model(x, attention_mask=mask, position_ids=pos).logits
            real = mask.bool()
            assert torch.allclose(a[real], b[real], atol=atol), (left, (a[real] - b[real]).abs().max())
        # cached decoding: a prompt, then one token at a time, equals one full forward
        x = torch.tensor([ids[2]])
        full = lab_model(x).logits[0]
        out = lab_model(x[:, :5], use_cache=True)
        steps = [out.logits[0]]
        for t in range(5, x.shape[1]):
            out = lab_model(x[:, t:t + 1], past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.logits[0])
        assert torch.allclose(torch.cat(steps), full, atol=atol)


def test_tiny_random_matches_transformers(tiny, tmp_path):
    model, tok = tiny
    assert isinstance(model, llama.LlamaLM)
    lab_model, hf_model = pair(model, tok, tmp_path / "m")
    assert isinstance(lab_model, llama.LlamaLM)
    assert_same(lab_model, hf_model, tok, atol=1e-5)


@pytest.mark.slow
def test_default_model_matches_transformers():
    if not models.is_prepared(models.default_model_dir()):
        pytest.skip("default model not prepared (run `sft-lab fetch-model default`)")
    lab_model, tok = models.load_model("default")
    hf_model = AutoModelForCausalLM.from_pretrained(models.default_model_dir()).eval()
    assert_same(lab_model, hf_model, tok, atol=1e-4)


def test_only_plain_llama_configs_take_the_fast_path():
    base = {"model_type": "llama", "hidden_act": "silu",
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}
    assert llama.supports(base)
    assert not llama.supports({**base, "model_type": "qwen2"})
    assert not llama.supports({**base, "rope_parameters": {"rope_type": "llama3"}})
    assert not llama.supports({**base, "hidden_act": "gelu"})


def test_a_folder_that_does_not_fit_its_config_is_refused(tiny, tmp_path):
    model, tok = tiny
    save_model(model, tok, tmp_path / "m")
    cfg = llama.read_config(tmp_path / "m")
    cfg["num_hidden_layers"] = 3
    (tmp_path / "m" / "config.json").write_text(__import__("json").dumps(cfg))
    with pytest.raises(models.ModelError, match="does not fit"):
        models.load_model(str(tmp_path / "m"))


def test_a_damaged_weights_file_is_named(tiny, tmp_path):
    model, tok = tiny
    save_model(model, tok, tmp_path / "m")
    weights = tmp_path / "m" / llama.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(models.ModelError, match="model.safetensors could not be read.*damaged"):
        models.load_model(str(tmp_path / "m"))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("kv_heads", [3, 9])
def test_training_attention_equals_sdpa(dtype, tol, kv_heads):
    """The recomputing causal attention: same output and gradients as torch's SDPA."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, h, 37, 16, generator=gen, dtype=dtype).requires_grad_()
               for h in (9, kv_heads, kv_heads))
    g = torch.randn(2, 9, 37, 16, generator=gen, dtype=dtype)
    ours = llama.CausalAttention.apply(q, k, v, 0.25)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True, enable_gqa=kv_heads != 9, scale=0.25)
    for a, b in zip((ours, *torch.autograd.grad(ours, (q, k, v), g)),
                    (ref, *torch.autograd.grad(ref, (q, k, v), g))):
        assert (a - b).abs().max() <= tol * b.abs().max()
