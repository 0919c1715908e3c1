"""Generation speed: the lab's batched loop against one `model.generate` call per prompt.

Job: 8 prompts x 2 models (base and a tuned copy) x up to 64 new tokens, greedy,
stopping at end of turn on both sides. Both run in this process, one after the other. The plain
side is transformers' `LlamaForCausalLM.generate`; the lab side is `lab.generate` on the lab's
model class, loaded from the same folder; the tuned copies get the same weights on both sides.

    python -m bench.generation
"""
from __future__ import annotations

import copy
import json
import os
import time

import torch

from bench.train_vs_trl import RESULTS, seed_tasks

N_PROMPTS, NEW_TOKENS = 8, 64


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lab.atomic import write_json
    from lab.engine.device import set_threads
    from lab.generate import GenConfig, generate, stop_ids
    from lab.models import load_model

    from transformers import AutoModelForCausalLM

    from lab.models import default_model_dir

    set_threads()
    base, tok = load_model("default")
    tuned = copy.deepcopy(base)
    with torch.no_grad():  # a different model: nudge the weights as a short fine-tune would
        for p in tuned.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    hf_base = AutoModelForCausalLM.from_pretrained(default_model_dir(), dtype="float32").eval()
    hf_tuned = copy.deepcopy(hf_base)
    hf_tuned.load_state_dict(tuned.state_dict(), strict=False)  # same names; lm_head is tied
    prompts = [c.prompt_only() for c in seed_tasks()[0][:N_PROMPTS]]
    eos = sorted(stop_ids(base, tok))

    def plain() -> list[list[str]]:
        out = []
        for model in (hf_base, hf_tuned):
            replies = []
            for p in prompts:
                enc = tok.apply_chat_template(p.messages(), add_generation_prompt=True,
                                              return_tensors="pt", return_dict=True)
                ids = model.generate(**enc, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=eos)
                replies.append(tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
            out.append(replies)
        return out

    def lab() -> list[list[str]]:
        cfg = GenConfig(max_new_tokens=NEW_TOKENS, batch_size=N_PROMPTS)
        return [generate(model, tok, prompts, cfg) for model in (base, tuned)]

    lab()  # warm-up (first calls allocate)
    timings = {}
    for name, fn in (("plain_generate", plain), ("lab", lab), ("plain_generate_2", plain), ("lab_2", lab)):
        t = time.perf_counter()
        replies = fn()
        timings[name] = time.perf_counter() - t
        if name == "plain_generate":
            reference = replies
        elif name == "lab":
            same = sum(a == b for m, n in zip(replies, reference) for a, b in zip(m, n))
    plain_s = (timings["plain_generate"] + timings["plain_generate_2"]) / 2
    lab_s = (timings["lab"] + timings["lab_2"]) / 2
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "prompts": N_PROMPTS, "models": 2,
              "max_new_tokens": NEW_TOKENS, "seconds": timings, "speedup": plain_s / lab_s,
              "identical_replies": f"{same}/{2 * N_PROMPTS}"}
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / "generation.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
