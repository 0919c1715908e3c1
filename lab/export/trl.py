"""Export a run to TRL, for when a laptop is outgrown: the same experiment on bigger machines.

`export_trl(run, out)` writes a folder to copy anywhere:
- `train.jsonl`: the run's training data in TRL's conversational prompt/completion form (the
  prompt is every turn before the last reply, the completion is that reply), or TRL's
  language-modelling form (`{"text": ...}`) for a dataset of plain texts;
- `config.yaml`: TRL's SFTConfig for `trl sft --config config.yaml`, its paths relative to the
  folder (run it from inside the folder);
- `accelerate.yaml`: an accelerate config for several GPUs on one machine
  (`--accelerate_config accelerate.yaml`);
- `README.md`: how to run it, and where TRL and the lab differ.
Note: TRL trains the last reply of a multi-turn record; the lab trains every reply.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_jsonl, write_text
from ..data.dataio import read_dataset
from ..records import DataError, TextRecord

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


# several GPUs on one machine: one process per GPU; TRL's own presets are alternatives
ACCELERATE = {"compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU", "num_machines": 1,
              "machine_rank": 0, "num_processes": 2, "gpu_ids": "all", "mixed_precision": "bf16",
              "main_training_function": "main", "same_network": True, "rdzv_backend": "static",
              "use_cpu": False}

README = """# {name}: the lab's run, ready for TRL

Exported by `sft-lab export-trl` from the run `{run}`. Copy this folder to any machine with
Python; the paths in `config.yaml` are relative to this folder, so run from inside it.

| file | what it is |
| --- | --- |
| `train.jsonl` | the {n} training examples the run trained on, {form} |
| `config.yaml` | TRL's SFTConfig with the run's settings (learning rate, schedule, batch size, epochs or steps, max length, seed) |
| `accelerate.yaml` | an accelerate config for several GPUs on one machine |

Set up once: `pip install trl` (it brings transformers, datasets and accelerate).

One GPU, or the CPU:

```bash
cd {folder}
trl sft --config config.yaml
```

Several GPUs on one machine: set `num_processes` in `accelerate.yaml` to the number of GPUs,
then

```bash
trl sft --config config.yaml --accelerate_config accelerate.yaml
```

The tuned model lands in `trl-output/`. The base model is `{model}`{where}; change
`model_name_or_path` in `config.yaml` to use another, e.g. a bigger one. `accelerate.yaml` asks
for bf16 mixed precision; on GPUs without bf16 set `mixed_precision` to `fp16` or `no`. `per_device_train_batch_size`
is per GPU: with several GPUs, lower it (or `gradient_accumulation_steps`) to keep the run's
effective batch of {batch} examples.

Where TRL and the lab differ: TRL trains the last reply of a multi-turn conversation (the lab
trains every reply), and its speed and memory use are its own.
"""


def _where(model: str) -> str:
    """A note for a model name that means nothing on another machine."""
    if model == "tiny-random":
        return " (the lab's own random test model, not on the hub: set a hub id)"
    if Path(model).exists():
        return " (a folder on the machine that exported this: copy it along, or set a hub id)"
    return ""


def _rows(records) -> tuple[list[dict], bool]:
    """TRL's rows for the run's records, and whether they are plain texts."""
    texts = [r for r in records if isinstance(r, TextRecord)]
    if texts and len(texts) < len(records):
        raise DataError("mixes plain texts and conversations; a TRL dataset is one or the other: "
                        "export the two kinds as separate runs", source="dataset.jsonl")
    if texts:
        return [{"text": r.text} for r in texts], True
    tools = any(c.tools for c in records)
    rows = []
    for conv in records:
        if conv.is_trainable:
            row = {"prompt": conv.prompt_only().messages(), "completion": [conv.turns[-1].message()]}
            rows.append({**row, "tools": conv.tool_list()} if tools else row)
    return rows, False


def export_trl(run_dir: str | Path, out_dir: str | Path, *, model: str | None = None) -> Path:
    """Write TRL's dataset, SFTConfig YAML, an accelerate config and a README for the run in
    `run_dir` into `out_dir`; return the YAML's path."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json); see `sft-lab runs`")
    cfg = json.loads(config_path.read_text())
    rows, texts = _rows(read_dataset(run_dir / "dataset.jsonl"))
    write_jsonl(out_dir / "train.jsonl", rows)
    name = model or cfg.get("model") or "default"
    trl = {
        "model_name_or_path": HUB_IDS.get(name, name),
        "datasets": [{"path": "json", "data_files": "train.jsonl", "split": "train"}],
        "output_dir": "trl-output",
        "learning_rate": cfg["lr"],
        "lr_scheduler_type": "constant_with_warmup" if cfg["schedule"] == "constant" else cfg["schedule"],
        "warmup_steps": cfg["warmup_ratio"],  # a value below 1 is a share of the steps
        "per_device_train_batch_size": cfg["batch_size"],
        "gradient_accumulation_steps": cfg["grad_accum"],
        "max_length": cfg["max_length"],
        "weight_decay": cfg["weight_decay"],
        "max_grad_norm": cfg["max_grad_norm"],
        "seed": cfg["seed"],
        "completion_only_loss": cfg["completion_only"] and not texts,  # a text is trained whole
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
    }
    if cfg.get("max_steps"):
        trl["max_steps"] = cfg["max_steps"]
    else:
        trl["num_train_epochs"] = cfg["epochs"]
    write_text(out_dir / "accelerate.yaml", _yaml(ACCELERATE))
    write_text(out_dir / "README.md", README.format(
        name=out_dir.resolve().name, run=run_dir.resolve().name, n=len(rows), folder=out_dir.resolve().name,
        form="as plain texts (TRL's language-modelling form)" if texts else
             "as prompt/completion conversations (TRL's conversational form)",
        model=trl["model_name_or_path"], where=_where(trl["model_name_or_path"]),
        batch=cfg["batch_size"] * cfg["grad_accum"]))
    return write_text(out_dir / "config.yaml", _yaml(trl))
