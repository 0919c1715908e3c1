"""Export a run's model as GGUF, the one-file format llama.cpp and Ollama run, with a Modelfile.

`export_gguf(run, out)` writes `out/model.gguf` (weights in f16 or f32, the tokenizer and its
chat template as metadata) and `out/Modelfile` for `ollama create NAME -f out/Modelfile`.

What it covers: Llama-architecture models (the default model, `tiny-random` and every run of
them; `lab.engine.llama.supports` says which) with a byte-level BPE tokenizer (GPT-2 style, as
SmolLM2's). Two layouts differ from a Hugging Face folder and are converted here:
- llama.cpp applies the rotary embedding to interleaved pairs of a head's dimensions, not to
  its two halves, so the rows of each head's query and key projections are reordered
  (transformers' GGUF loader puts them back);
- a tied output layer is not stored twice: without an `output.weight` tensor, readers use the
  token embedding.
Which pre-tokenizer a BPE vocabulary needs is named (`tokenizer.ggml.pre`) from the folder's own
`tokenizer.json`, so llama.cpp splits text exactly as the lab trained on it.

The Modelfile's TEMPLATE is Ollama's Go-template form of ChatML, written only when the model's
chat template renders ChatML (checked by rendering); a default system prompt that the chat
template inserts (SmolLM2's does) becomes the Modelfile's SYSTEM, as Ollama inserts it the same
way. A test loads the GGUF back through transformers and compares logits and prompt tokens.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import atomic, runs
from ..masks import DEFAULT_TEMPLATE, render

DTYPES = ("f16", "f32")
CHATML_STOP = "<|im_end|>"
# Ollama's Go template for ChatML: each message, then the assistant's turn to speak
OLLAMA_CHATML = ('{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
                 '{{ end }}<|im_start|>assistant\n')


def model_folder(run: str | Path) -> Path:
    """The model folder of a run folder (`run/model`), or `run` itself when it is one."""
    run = Path(run)
    for folder in (run / runs.MODEL, run):
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
    raise FileNotFoundError(f"{run} is neither a run folder with a saved model ({runs.MODEL}/) nor a "
                            "model folder (config.json and model.safetensors); see `sft-lab runs`")


def _pre_tokenizer(tokenizer_json: dict) -> str:
    """llama.cpp's name for the folder's pre-tokenizer: "gpt2" (GPT-2's regex, what the lab's
    default model uses) or "smollm" (digits split one by one first, as SmolLM2's hub folders)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [(p.get("type"), p.get("individual_digits"), p.get("use_regex")) for p in parts]
    if kinds == [("ByteLevel", None, True)]:
        return "gpt2"
    if kinds == [("Digits", True, None), ("ByteLevel", None, True)]:
        return "smollm"
    raise ValueError("export-gguf knows byte-level BPE tokenizers that split text like GPT-2 or SmolLM2; "
                     f"this one's pre-tokenizer is {json.dumps(pre)[:120]}")


def _vocabulary(folder: Path) -> tuple[list[str], list[int], list[str], str]:
    """(tokens by id, their llama.cpp types, merges, pre-tokenizer name) from tokenizer.json."""
    import gguf

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"{folder} has no tokenizer.json; export-gguf needs a fast (tokenizers) tokenizer")
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or (data.get("decoder") or {}).get("type") != "ByteLevel":
        raise ValueError("export-gguf writes byte-level BPE tokenizers (GPT-2 style, as SmolLM2's); "
                         f"this one is {model.get('type')} with a {(data.get('decoder') or {}).get('type')} decoder")
    by_id = {i: t for t, i in model["vocab"].items()}
    kinds = {i: gguf.TokenType.NORMAL for i in by_id}
    for added in data.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        kinds[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError("the tokenizer's ids have gaps; export-gguf needs ids 0..N-1")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return ([by_id[i] for i in range(len(by_id))], [int(kinds[i]) for i in range(len(by_id))], merges,
            _pre_tokenizer(data))


def _interleave_rotary(w, heads: int):
    """Reorder each head's rows from (first half, second half) to interleaved pairs, the
    layout llama.cpp's rotary embedding expects: rows (0, h, 1, h+1, ...) of each head, h = half.

    >>> import torch
    >>> _interleave_rotary(torch.arange(8.0)[:, None], heads=2)[:, 0].tolist()
    [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
    """
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _tensors(folder: Path, config: dict, dtype: str):
    """(GGUF name, numpy array) for each weight, converted to llama.cpp's layout and dtype."""
    import gguf
    import numpy as np
    import torch
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    if config.get("tie_word_embeddings", True):
        weights.pop("lm_head.weight", None)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    for key, w in weights.items():
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"export-gguf does not know where the weight {key} goes in a llama GGUF")
        w = w.to(torch.float32)
        if key.endswith("self_attn.q_proj.weight"):
            w = _interleave_rotary(w, heads)
        elif key.endswith("self_attn.k_proj.weight"):
            w = _interleave_rotary(w, kv_heads)
        # llama.cpp keeps 1-D tensors (norms) in f32 whatever the file type
        yield name, w.numpy().astype(np.float16 if dtype == "f16" and w.dim() > 1 else np.float32)


def _chatml_system(tokenizer) -> tuple[bool, str | None]:
    """(whether the chat template renders ChatML, the system prompt it adds when none is given)."""
    def chatml(msgs):
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) + "<|im_start|>assistant\n"

    talk = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    try:
        with_system = render(tokenizer, [{"role": "system", "content": "s"}] + talk, add_generation_prompt=True)
        without = render(tokenizer, talk, add_generation_prompt=True)
    except Exception:  # a template that cannot render this plain chat is no ChatML
        return False, None
    if with_system != chatml([{"role": "system", "content": "s"}] + talk):
        return False, None
    if without == chatml(talk):
        return True, None
    head, tail = "<|im_start|>system\n", "<|im_end|>\n" + chatml(talk)
    if without.startswith(head) and without.endswith(tail):
        return True, without[len(head):-len(tail)]
    return False, None


def modelfile(tokenizer, gguf_name: str) -> str:
    """An Ollama Modelfile for the GGUF file `gguf_name` beside it."""
    chatml, system = _chatml_system(tokenizer)
    lines = ["# Ollama: ollama create NAME -f Modelfile, then: ollama run NAME", f"FROM ./{gguf_name}"]
    if chatml:
        lines.append(f'TEMPLATE """{OLLAMA_CHATML}"""')
        if system and '"""' not in system:
            lines.append(f'SYSTEM """{system}"""')
        lines.append(f'PARAMETER stop "{CHATML_STOP}"')
    else:
        lines.append("# the chat template is not ChatML: Ollama reads it from the GGUF's tokenizer.chat_template")
        if tokenizer.eos_token:
            lines.append(f"PARAMETER stop {json.dumps(tokenizer.eos_token)}")
    return "\n".join(lines) + "\n"


def export_gguf(run: str | Path, out: str | Path, *, dtype: str = "f16") -> tuple[Path, Path]:
    """Write `out/model.gguf` and `out/Modelfile` for the model of `run` (a run folder or a
    model folder); return both paths. Raises FileNotFoundError (no model there) or ValueError
    (a model or tokenizer GGUF export does not cover), before writing anything."""
    import gguf

    from ..engine import llama
    from ..models import load_tokenizer

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    folder = model_folder(run)
    config = llama.read_config(folder)
    if not (config and llama.supports(config)) or config.get("attention_bias") or config.get("mlp_bias"):
        raise ValueError(f"export-gguf writes Llama-architecture models; {folder} holds a "
                         f"{config.get('model_type')} model (export it with llama.cpp's convert_hf_to_gguf.py)")
    tokens, kinds, merges, pre = _vocabulary(folder)
    tokenizer = load_tokenizer(str(folder))
    plain, special = (tokenizer("a", add_special_tokens=flag)["input_ids"] for flag in (False, True))
    adds_bos = len(special) > len(plain) and special[0] == tokenizer.bos_token_id
    for i in range(len(tokens), config["vocab_size"]):  # rows of a padded embedding: unused ids
        tokens.append(f"[PAD{i}]")
        kinds.append(int(gguf.TokenType.UNUSED))

    out = Path(out)
    card = runs.read_card(run) or {}
    gguf_path = out / "model.gguf"
    with atomic.replacing(gguf_path) as tmp:
        w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        w.add_name(card.get("name") or Path(run).resolve().name)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
        w.add_context_length(config["max_position_embeddings"])
        w.add_embedding_length(config["hidden_size"])
        w.add_block_count(config["num_hidden_layers"])
        w.add_feed_forward_length(config["intermediate_size"])
        w.add_head_count(config["num_attention_heads"])
        w.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
        w.add_layer_norm_rms_eps(config["rms_norm_eps"])
        w.add_rope_freq_base(float((config.get("rope_parameters") or {}).get("rope_theta", config.get("rope_theta", 10000.0))))
        w.add_rope_dimension_count(llama.head_dim(llama.Config(**config)))
        w.add_vocab_size(config["vocab_size"])
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(kinds)
        w.add_token_merges(merges)
        for kind in ("bos", "eos", "unk", "pad"):
            token_id = getattr(tokenizer, f"{kind}_token_id")
            if token_id is not None:
                getattr(w, f"add_{kind}_token_id")(token_id)
        w.add_add_bos_token(adds_bos)
        w.add_chat_template(tokenizer.chat_template or DEFAULT_TEMPLATE)  # what the lab trains with
        for name, array in _tensors(folder, config, dtype):
            w.add_tensor(name, array)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return gguf_path, atomic.write_text(out / "Modelfile", modelfile(tokenizer, gguf_path.name))
