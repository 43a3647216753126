"""Every setting's value is checked before any work: generator settings, the classifier recipe and the methods'
parameters, in `python -m core fewshot` / `augment` (exit 2, one line naming the setting, the value and what is
allowed) and on the Few-shot page (shown as the user's settings, not as a bug); the typed definitions cover every
registered generator, recipe field and augmentation parameter."""
import math
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from app_support import app_env, app_checkpoints, new_app  # noqa: F401
from core.__main__ import main
from core.augment import AUGMENTATIONS
from core.fewshot.generators import GENERATORS
from core.fewshot.spec import ExperimentSpec, Recipe

ROOT = Path(__file__).resolve().parent.parent
FEWSHOT = ["fewshot", "--dataset", "digits", "--shots", "2", "--seeds", "1", "--methods", "none", "vae-noise",
           "mixup", "--steps", "5", "--device", "cpu", "--workers", "0"]
# (flag, value, what the message must name): every bad value of items 8 and 9 of issue 17, and a few more
BAD_FEWSHOT = [
    ("--gen", "vae.batch_size=0", ["vae.batch_size=0", ">= 1"]),
    ("--gen", "vae.lr=abc", ["vae.lr='abc'", "text", "> 0"]),
    ("--gen", "vae.latent_dim=[1,2]", ["vae.latent_dim=[1, 2]", "list", "integer"]),
    ("--gen", "vae.steps=-5", ["vae.steps=-5", ">= 1"]),
    ("--gen", "vae.latent_dim=-1", ["vae.latent_dim=-1", "[1, 1024]"]),
    ("--gen", "multi-vae.mix_in=1", ["multi-vae.mix_in=1", "[0, 1)"]),
    ("--gen", "vae.arch=transformer", ["vae.arch='transformer'", "'mlp'"]),
    ("--recipe", "lr=abc", ["recipe setting lr='abc'", "> 0"]),
    ("--steps", "-5", ["recipe setting steps=-5", ">= 1"]),
    ("--recipe", "steps=-5", ["steps is given twice", "--steps 5", "--recipe steps=-5"]),   # beside --steps 5
    ("--recipe", "dropout=NaN", ["dropout=nan", "NaN"]),
    ("--param", "mixup.alpha=NaN", ["mixup.alpha=nan", "NaN", "> 0"]),
    ("--param", 'mixup.alpha="x"', ["mixup.alpha='x'", "text"]),
    ("--param", "mixup.nope=1", ["nope", "alpha, lam"]),
    ("--param", "vae-noise.n_per=2.5", ["vae-noise.n_per=2.5", "integer"]),
    ("--methods", "classic+", ["classic+", "empty part"]),
]


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("flag, value, says", BAD_FEWSHOT, ids=[v for _, v, _ in BAD_FEWSHOT])
def test_fewshot_cli_refuses_a_bad_value_in_one_line_before_any_work(flag, value, says, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*FEWSHOT, "--out", str(out)]
    argv = argv[:argv.index("--methods") + 1] + ["none", value] + argv[argv.index("--steps"):] \
        if flag == "--methods" else argv + [flag, value]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert all(s in line for s in says), line
    assert not out.exists()                                   # nothing ran, nothing was written


def test_fewshot_cli_subprocess_exits_2_with_one_line():
    r = subprocess.run([sys.executable, "-m", "core", *FEWSHOT, "--gen", "vae.batch_size=0", "--out",
                        str(ROOT / "runs" / "never-written")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert _one_line(r.stderr) == ("error: generator setting vae.batch_size=0 is out of range; allowed: an "
                                   "integer >= 1")
    assert not (ROOT / "runs" / "never-written").exists()


AUGMENT = ["augment", "--dataset", "digits", "--shots", "2", "--method", "mixup", "--n", "3"]
BAD_AUGMENT = [
    ("nope=1", ["method 'mixup' has no parameter(s) ['nope']", "alpha, lam"]),
    ('alpha="x"', ["mixup.alpha='x'", "text", "> 0"]),
    ("alpha=NaN", ["mixup.alpha=nan", "is NaN, which is never allowed", "> 0"]),
    ("lam=2", ["mixup.lam=2", "[0, 1]"]),
]


@pytest.mark.parametrize("param, says", BAD_AUGMENT, ids=[p for p, _ in BAD_AUGMENT])
def test_augment_cli_refuses_a_bad_parameter_in_one_line(param, says, tmp_path, capsys):
    out = tmp_path / "aug.npz"
    assert main([*AUGMENT, "--param", param, "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert all(s in line for s in says), line
    assert not out.exists()


def test_augment_refuses_an_existing_out_file_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "mine.npz"
    out.write_bytes(b"precious")
    assert main([*AUGMENT, "--out", str(out)]) == 2
    assert "--overwrite" in _one_line(capsys.readouterr().err) and out.read_bytes() == b"precious"
    assert main([*AUGMENT, "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:2] == b"PK"                      # replaced by the .npz (a zip)
    assert main([*AUGMENT, "--out", str(tmp_path)]) == 2      # a folder is never a file to write
    assert "folder" in capsys.readouterr().err


# (widget key, value, what the message must name): the page's generator form has number inputs (no text can be
# typed there), its method-parameter and combination boxes take text
BAD_PAGE = [
    ("w_fs_gen_vae_batch_size", 0, ["vae.batch_size=0", ">= 1"]),
    ("w_fs_gen_vae_steps", -5, ["vae.steps=-5", ">= 1"]),
    ("w_fs_gen_vae_latent_dim", -1, ["vae.latent_dim=-1", "[1, 1024]"]),
    ("w_fs_params", "mixup.alpha=NaN", ["mixup.alpha=nan", "NaN"]),
    ("w_fs_params", 'mixup.alpha="x"', ["mixup.alpha='x'", "text"]),
    ("w_fs_params", "mixup.nope=1", ["nope", "alpha, lam"]),
    ("w_fs_combos", "classic+", ["classic+", "empty part"]),
]


@pytest.mark.parametrize("key, value, says", BAD_PAGE, ids=[f"{k[6:]}={v}" for k, v, _ in BAD_PAGE])
def test_fewshot_page_shows_a_bad_value_as_the_users_settings(app_env, key, value, says):
    at = new_app("app_pages/fewshot.py")
    (at.number_input if isinstance(value, int) else at.text_input)(key=key).set_value(value)
    at.button[0].click().run()
    assert not at.exception
    assert "_ll_fs_job" not in at.session_state               # refused before any work: no run started
    text = at.error[0].value
    assert "your settings" in text and "internal error" not in text and all(s in text for s in says), text


# ------------------------------------------------------------------------ the typed definitions, per registry

@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_every_augmentation_parameter_has_a_type_and_declared_bounds(name):
    from core.augment.params import COMMON, method_parameters
    from core.settings import SettingError

    aug = AUGMENTATIONS[name]
    for param, allowed in method_parameters(aug).items():
        assert param in COMMON or param in aug.limits, f"{name}.{param}: declare its range in COMMON or limits="
        default = {**{p: v for p, v in _signature_defaults(aug.fn).items()}, **aug.defaults}[param]
        assert allowed.problem(default) is None, f"{name}.{param}: its default {default!r} is refused"
        with pytest.raises(SettingError, match=f"method parameter {name}.{param}="):
            ExperimentSpec(methods=["none"], params={name: {param: [1, 2]}})   # never a list


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_setting_is_typed(name):
    from core.settings import SettingError

    config = GENERATORS[name].config
    config()                                                   # the defaults pass
    for f in fields(config):
        with pytest.raises(SettingError, match=f"generator setting {name}.{f.name}="):
            ExperimentSpec(methods=["none"], generators={name: {f.name: "?" if f.type != "str" else 1}})


def test_every_recipe_setting_is_typed():
    from core.settings import SettingError

    for f in fields(Recipe):
        with pytest.raises(SettingError, match=f"recipe setting {f.name}="):
            ExperimentSpec(methods=["none"], recipe={f.name: math.nan if f.type != "str" else 1})


def _signature_defaults(fn):
    import inspect

    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}
