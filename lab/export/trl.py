"""Export a run to TRL, for when a laptop is outgrown: the same experiment on bigger machines.

`export_trl(run, out)` writes `out/train.jsonl` (TRL's conversational prompt/completion form:
the prompt is every turn before the last reply, the completion is that reply) and
`out/config.yaml` for `trl sft --config out/config.yaml` (add `accelerate launch` for several
GPUs). Note: TRL trains the last reply of a multi-turn record; the lab trains every reply.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_jsonl, write_text
from ..dataio import read_dataset

# what the lab's model names mean on a machine that reaches the Hugging Face hub
HUB_IDS = {"default": "HuggingFaceTB/SmolLM2-135M-Instruct",
           "SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def _yaml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML scalar


def _yaml(config: dict) -> str:
    lines = []
    for key, value in config.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            for item in value:
                first = True
                for k, v in item.items():
                    lines.append(f"  {'- ' if first else '  '}{k}: {_yaml_value(v)}")
                    first = False
        else:
            lines.append(f"{key}: {_yaml_value(value)}")
    return "\n".join(lines) + "\n"


def export_trl(run_dir: str | Path, out_dir: str | Path, *, model: str | None = None) -> Path:
    """Write TRL's dataset and SFTConfig YAML for the run in `run_dir`; return the YAML's path."""
    run_dir, out_dir = Path(run_dir), Path(out_dir).resolve()
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json); see `sft-lab runs`")
    cfg = json.loads(config_path.read_text())
    rows = []
    for conv in read_dataset(run_dir / "dataset.jsonl"):
        if conv.is_trainable:
            rows.append({"prompt": conv.prompt_only().messages(),
                         "completion": [{"role": "assistant", "content": conv.response}]})
    data_path = write_jsonl(out_dir / "train.jsonl", rows)
    name = model or cfg.get("model") or "default"
    trl = {
        "model_name_or_path": HUB_IDS.get(name, name),
        "datasets": [{"path": "json", "data_files": str(data_path), "split": "train"}],
        "output_dir": str(out_dir / "trl-output"),
        "learning_rate": cfg["lr"],
        "lr_scheduler_type": "constant_with_warmup" if cfg["schedule"] == "constant" else cfg["schedule"],
        "warmup_steps": cfg["warmup_ratio"],  # a value below 1 is a share of the steps
        "per_device_train_batch_size": cfg["batch_size"],
        "gradient_accumulation_steps": cfg["grad_accum"],
        "max_length": cfg["max_length"],
        "weight_decay": cfg["weight_decay"],
        "max_grad_norm": cfg["max_grad_norm"],
        "seed": cfg["seed"],
        "completion_only_loss": cfg["completion_only"],
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
    }
    if cfg.get("max_steps"):
        trl["max_steps"] = cfg["max_steps"]
    else:
        trl["num_train_epochs"] = cfg["epochs"]
    return write_text(out_dir / "config.yaml", _yaml(trl))
