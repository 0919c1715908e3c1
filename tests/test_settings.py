"""One source per setting: a setting declared on the config reaches the CLI and the Train tab
with no other edit."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from lab.cli import _train_flags, build_parser
from lab.config import TrainConfig, setting, settings
from widgets.train_panel import TrainPanel, setting_traits


@dataclass
class Extended(TrainConfig):
    label_smoothing: float = setting(0.0, "Label smoothing", "share of each target's probability spread "
                                     "over the vocabulary", low=0, high=1, step=0.05, panel=True)


def test_a_new_setting_reaches_the_cli_and_the_panel():
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _train_flags(parser, Extended)
    text = parser.format_help()
    assert "--label-smoothing" in text and "spread over the vocabulary" in " ".join(text.split())
    assert parser.parse_args(["--label-smoothing", "0.1"]).label_smoothing == 0.1

    traits = setting_traits(Extended)
    panel = traits()
    assert panel.label_smoothing == 0.0
    assert traits.class_traits()["label_smoothing"].metadata.get("sync") is True
    spec = {s["name"]: s for s in panel.setting_spec}
    assert spec["label_smoothing"]["label"] == "Label smoothing" and spec["label_smoothing"]["step"] == 0.05


def test_the_panel_and_the_cli_show_every_declared_setting():
    panel_names = {s["name"] for s in settings(panel=True)}
    spec = {s["name"]: s for s in TrainPanel().setting_spec}
    assert panel_names <= set(spec)
    for s in settings(panel=True):  # label and help as declared, not written again
        assert spec[s["name"]]["label"] == s["label"] and spec[s["name"]]["help"] == s["help"]
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest for a in train._actions}
    assert {s["name"] for s in settings()} <= flags


def test_panel_messages_name_settings_by_their_labels():
    p = TrainPanel(epochs=0, lr=-1)
    try:
        p.config()
    except ValueError as err:
        assert "Epochs must be above 0" in str(err) and "Learning rate must be above 0" in str(err)
    else:
        raise AssertionError("bad settings were accepted")
