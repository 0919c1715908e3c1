"""Generation: batching with left padding changes nothing; seeds reproduce; streaming adds up."""
from lab.generate import continue_text, GenConfig, generate, stop_ids
from lab.records import Conversation, Turn

PROMPTS = ["Hi", "Tell me a long story about a cat and a dog", "What is 2+2?"]


def test_batched_equals_one_by_one(tiny_both):
    model, tok = tiny_both
    cfg = GenConfig(max_new_tokens=12)
    together = generate(model, tok, PROMPTS, cfg)
    alone = [generate(model, tok, [p], cfg)[0] for p in PROMPTS]
    assert together == alone


def test_matches_hf_generate_greedy(tiny, tmp_path):
    """Batched, left-padded, cached decoding gives what transformers' generate gives for each
    prompt alone, on the same weights."""
    from transformers import AutoModelForCausalLM

    from lab.runs import save_model

    model, tok = tiny
    save_model(model, tok, tmp_path / "m")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    prompts = ["Hi", "Tell me a long story about a dragon and a knight.", "2+2?"]
    expect = []
    for p in prompts:
        ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        out = hf.generate(**ids, max_new_tokens=10, do_sample=False, eos_token_id=sorted(stop_ids(model, tok)))
        expect.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    assert generate(model, tok, prompts, GenConfig(max_new_tokens=10)) == expect
    raw = tok("The capital of France", return_tensors="pt", add_special_tokens=False)
    out = hf.generate(**raw, max_new_tokens=10, do_sample=False, eos_token_id=sorted(stop_ids(model, tok)))
    expect = tok.decode(out[0, raw["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert continue_text(model, tok, "The capital of France", GenConfig(max_new_tokens=10)) == expect


def test_sampling_is_seeded(tiny_both):
    model, tok = tiny_both
    a = generate(model, tok, PROMPTS, GenConfig(max_new_tokens=8, temperature=1.0, seed=3))
    b = generate(model, tok, PROMPTS, GenConfig(max_new_tokens=8, temperature=1.0, seed=3))
    c = generate(model, tok, PROMPTS, GenConfig(max_new_tokens=8, temperature=1.0, seed=4))
    assert a == b and a != c


def test_streaming_pieces_add_up_to_the_reply(tiny_both):
    model, tok = tiny_both
    pieces = {}
    replies = generate(model, tok, PROMPTS, GenConfig(max_new_tokens=8),
                       on_token=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text))
    assert [pieces.get(i, "").strip() for i in range(3)] == replies


def test_multi_turn_prompt_and_stop_tokens(tiny_both):
    model, tok = tiny_both
    conv = Conversation((Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")))
    assert len(generate(model, tok, [conv], GenConfig(max_new_tokens=4))) == 1
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop_ids(model, tok)
