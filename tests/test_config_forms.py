"""Forms and flags built from config dataclasses: a new model kind's field shows up as a CLI flag and as a
Train-page widget without any change to the CLI or the page (ui.config_form, core.config_flags)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest
from torch import nn

from core.config import MODEL_CONFIGS, ModelConfig
from core.models import MODELS, register_model


@dataclass
class ToyConfig(ModelConfig):
    toy_weight: float = field(default=0.5, metadata={"help": "how much toy", "min": 0.0})
    toy_mode: str = field(default="a", metadata={"help": "which toy", "choices": ("a", "b")})
    toy_flag: bool = field(default=False, metadata={"help": "a toy switch"})


@pytest.fixture
def toy_kind():
    """Registers a 'toy' kind for one test (as a new model module would), then removes it again."""
    register_model("toy", ToyConfig, "a toy kind for the form tests")(type("Toy", (nn.Module,), {}))
    yield "toy"
    MODELS.pop("toy"), MODEL_CONFIGS.pop("toy")


def _train_parser():
    from core.commands import train

    parser = argparse.ArgumentParser()
    train.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_a_new_kinds_fields_become_cli_flags(toy_kind):
    from core.commands.train import configs_from_args

    parser = _train_parser()
    args = parser.parse_args(["train", "--model", "toy", "--toy-weight", "0.25", "--toy-mode", "b", "--toy-flag",
                              "--latent-dim", "3", "--epochs", "2", "--out", "x"])
    model, train = configs_from_args(args)
    assert type(model) is ToyConfig and (model.toy_weight, model.toy_mode, model.toy_flag) == (0.25, "b", True)
    assert model.latent_dim == 3 and train.epochs == 2
    assert configs_from_args(parser.parse_args(["train", "--model", "toy", "--out", "x"]))[0] == \
        ToyConfig(input_shape=(1,))  # flags not given keep the dataclass's defaults
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "--toy-weight" in help_text and "how much toy" in help_text and "[toy]" in help_text
    with pytest.raises(SystemExit):  # choices come from the field's metadata
        parser.parse_args(["train", "--model", "toy", "--toy-mode", "c", "--out", "x"])


def test_cli_refuses_a_setting_of_another_kind():
    from core.commands.train import configs_from_args

    args = _train_parser().parse_args(["train", "--model", "aae", "--beta", "4", "--out", "x"])
    with pytest.raises(ValueError, match="--beta is a setting of vae, not of this model"):
        configs_from_args(args)


def test_the_old_cli_invocations_still_mean_the_same():
    """The Makefile's and the README's commands: same flags, same configs as before kinds were open."""
    from core.commands.train import configs_from_args

    parser = _train_parser()
    aae, _ = configs_from_args(parser.parse_args(["train", "--model", "aae", "--latent-dim", "2", "--out", "x"]))
    assert aae.prior == "uniform" and aae.latent_dim == 2  # the AAE's default prior, as before
    vae, tr = configs_from_args(parser.parse_args(["train", "--model", "vae", "--beta", "4", "--beta-norm",
                                                   "--epochs", "60", "--out", "x"]))
    assert (vae.beta, vae.beta_norm, tr.epochs, tr.lr, tr.batch_size) == (4.0, True, 60, 1e-3, 128)
    default, _ = configs_from_args(parser.parse_args(["train", "--out", "x"]))
    assert default.kind == "vae" and default.latent_dim == 16


def _form_app():
    from dataclasses import dataclass, field

    import streamlit as st

    from core.config import ModelConfig
    from ui.config_form import config_widgets

    @dataclass
    class ToyConfig(ModelConfig):
        toy_weight: float = field(default=0.5, metadata={"help": "how much toy", "min": 0.0})
        toy_mode: str = field(default="a", metadata={"help": "which toy", "choices": ("a", "b")})
        toy_flag: bool = field(default=False, metadata={"help": "a toy switch"})

    st.session_state["values"] = config_widgets(ToyConfig, "w_", values={"latent_dim": 2},
                                                bounds={"latent_dim": (1, 128)})


def test_a_config_dataclass_becomes_a_streamlit_form():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_form_app, default_timeout=30).run()
    assert not at.exception
    assert at.session_state["values"] == {"latent_dim": 2, "hidden": 256, "arch": "auto", "toy_weight": 0.5,
                                          "toy_mode": "a", "toy_flag": False}  # input_shape is not a form field
    weight = at.number_input(key="w_toy_weight")
    assert weight.label == "Toy weight" and weight.help == "how much toy" and weight.min == 0.0
    assert at.number_input(key="w_latent_dim").max == 128
    assert at.selectbox(key="w_toy_mode").options == ["a", "b"]
    weight.set_value(2.0)
    at.selectbox(key="w_toy_mode").set_value("b")
    at.checkbox(key="w_toy_flag").check().run()
    assert not at.exception
    assert at.session_state["values"]["toy_weight"] == 2.0
    assert at.session_state["values"]["toy_mode"] == "b" and at.session_state["values"]["toy_flag"] is True
