"""A chat tokenizer over the `tokenizers` library: transformers' tokenizer API, the part the lab uses.

Why not transformers' own class: `import transformers` alone takes about 0.8 s and its loader
another 0.2 s, a third of the 3 s start-up budget. For folders whose `tokenizer.json` holds the
whole pipeline (what transformers 5 writes, `"tokenizer_class": "TokenizersBackend"`, as the
default model's folder and every lab run folder have) this class gives the same ids, text and
chat rendering (a test checks it against transformers); other folders load through
transformers (`lab.models.load_tokenizer` decides).

Chat templates render in Jinja's immutable sandbox with the settings transformers documents for
chat templates: `trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, `tojson`,
`strftime_now`.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from ..atomic import write_json, write_text

SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")


def handles(folder: str | Path) -> bool:
    """True when `folder`'s tokenizer is fully described by its tokenizer.json."""
    folder = Path(folder)
    config = folder / "tokenizer_config.json"
    if not (config.is_file() and (folder / "tokenizer.json").is_file()):
        return False
    cfg = json.loads(config.read_text())
    return (cfg.get("tokenizer_class") == "TokenizersBackend"
            and not any(k in cfg for k in ("add_bos_token", "add_eos_token", "auto_map")))


def _special_text(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def _environment():
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.exceptions import TemplateError

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: \
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals.update(raise_exception=raise_exception,
                       strftime_now=lambda fmt: datetime.now().strftime(fmt))
    return env


class Tokenizer:
    """Encode, decode and render chats like transformers' `TokenizersBackend` for the same folder."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer as Backend

        folder = Path(folder)
        self.name_or_path = str(folder)
        self._backend = Backend.from_file(str(folder / "tokenizer.json"))
        self._config = json.loads((folder / "tokenizer_config.json").read_text())
        for key in SPECIAL:
            setattr(self, key, _special_text(self._config.get(key)))
        template_file = folder / "chat_template.jinja"
        self.chat_template = (template_file.read_text() if template_file.is_file()
                              else self._config.get("chat_template"))
        self._templates: dict[str, object] = {}

    # ids of the special tokens -------------------------------------------------------------
    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._backend.token_to_id(token)

    bos_token_id = property(lambda self: self._id(self.bos_token))
    eos_token_id = property(lambda self: self._id(self.eos_token))
    unk_token_id = property(lambda self: self._id(self.unk_token))
    pad_token_id = property(lambda self: self._id(self.pad_token))

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    # text <-> ids ---------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._backend.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text: str | list[str], add_special_tokens: bool = True,
                 return_tensors: str | None = None) -> dict:
        """{"input_ids", "attention_mask"} for one text, or for a list (unpadded lists). With
        `return_tensors="pt"`, (rows, tokens) tensors; the texts must then be of equal lengths."""
        many = isinstance(text, list)
        ids = [self.encode(t, add_special_tokens) for t in (text if many else [text])]
        out = {"input_ids": ids, "attention_mask": [[1] * len(r) for r in ids]}
        if return_tensors == "pt":
            import torch
            return {k: torch.tensor(v) for k, v in out.items()}  # one text: one row
        if return_tensors is not None:
            raise ValueError(f"return_tensors={return_tensors!r} is not supported; use 'pt' or None")
        return out if many else {k: v[0] for k, v in out.items()}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(self, rows, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(r, skip_special_tokens) for r in rows]

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            found = self._backend.token_to_id(tokens)
            return self.unk_token_id if found is None else found
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        return [self._backend.id_to_token(i) for i in ids]

    # chats --------------------------------------------------------------------------------
    def apply_chat_template(self, conversation: list[dict], chat_template: str | None = None,
                            tokenize: bool = True, add_generation_prompt: bool = False,
                            return_tensors: str | None = None, return_dict: bool = False, **kwargs):
        """Render `conversation` with the chat template; token ids unless `tokenize=False`."""
        template = chat_template or self.chat_template
        if template is None:
            raise ValueError("this tokenizer has no chat template; pass chat_template=...")
        if template not in self._templates:
            self._templates[template] = _environment().from_string(template)
        special = {k: getattr(self, k) for k in SPECIAL}
        text = self._templates[template].render(messages=conversation,
                                                add_generation_prompt=add_generation_prompt,
                                                **{**special, **kwargs})
        if not tokenize:
            return text
        enc = self(text, add_special_tokens=False, return_tensors=return_tensors)
        return enc if return_dict else enc["input_ids"]

    # files --------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> None:
        """tokenizer.json, tokenizer_config.json and chat_template.jinja, as transformers writes them."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._backend.save(str(folder / "tokenizer.json"))
        config = {**self._config, **{k: getattr(self, k) for k in SPECIAL if getattr(self, k)}}
        config.pop("chat_template", None)
        write_json(folder / "tokenizer_config.json", config)
        if self.chat_template:
            write_text(folder / "chat_template.jinja", self.chat_template)
