"""Configuration errors of ``dermlab fit`` are one line each: the key, the value given and what is accepted, without
jsonargparse's union dump; ``DERMLAB_VERBOSE=1`` brings the full report back."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermlab.cli import main
from tests.conftest import REPO

DEMO = str(REPO / "experiments" / "demo_synthetic.yaml")
DUMP = ("Given value type", "Namespace(", "NestedArg", "Does not validate against any of the Union subtypes",
        "Expected a <class 'NoneType'>", "usage:")


def fit_error(capsys, tmp_path, *args: str) -> str:
    """stderr of ``dermlab fit`` on the synthetic demo config with ``args``; it must stop with a non-zero code."""
    with pytest.raises(SystemExit) as leaving:
        main(["fit", "-c", DEMO, "--data.init_args.root", str(tmp_path / "data"), "--run.wandb", "disabled",
              "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run"), *args])
    assert leaving.value.code not in (0, None)
    return capsys.readouterr().err


def yaml_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "piece.yaml"
    path.write_text(text)
    return str(path)


def assert_one_line(err: str, *expected: str) -> None:
    """One ``dermlab: error:`` line holding every ``expected`` text, no dump."""
    errors = [line for line in err.splitlines() if line.startswith("dermlab: error:")]
    assert len(errors) == 1, err
    for text in expected:
        assert text in errors[0], (text, err)
    for text in DUMP:
        assert text not in err, (text, err)


@pytest.mark.parametrize(("args", "expected"), [
    (["--model.init_args.optimizer.init_args.lr", "abc"],
     ["model.init_args.optimizer.init_args.lr = 'abc'", "expected float"]),
    (["--data.init_args.batch_size", "abc"], ["data.init_args.batch_size = 'abc'", "expected int"]),
    (["--data.init_args.task", "nosuch"],
     ["data.init_args.task = 'nosuch'", "expected one of 'melanoma', 'seborrheic_keratosis', 'three_class'"]),
    (["--model.init_args.backbon", "resnet18"],
     ["model.init_args.backbon = 'resnet18'", "not an argument of lightning_modules.LesionClassifier",
      "did you mean backbone"]),
    (["--model.init_args.optimizer.init_args.momentun", "0.9"],
     ["model.init_args.optimizer.init_args.momentun = '0.9'", "not an argument of torch.optim.AdamW"]),
    (["--model.class_path", "lightning_modules.NoSuchClassifier"],
     ["model.class_path = 'lightning_modules.NoSuchClassifier'", "cannot be imported"]),
    (["--trainer.max_epochs", "-x"],
     ["--trainer.max_epochs = '-x'", "write --trainer.max_epochs=-x"]),
    (["--trainer.max_epochs", "abc"], ["trainer.max_epochs = 'abc'", "expected int"]),
    (["--trainer.max_epocs", "3"], ["--trainer.max_epocs 3", "did you mean --trainer.max_epochs"]),
    # a prefix of an option is not taken for it (argparse's abbreviations would run max_epochs 1 silently)
    (["--trainer.max_epoch", "1"], ["--trainer.max_epoch 1", "did you mean --trainer.max_epochs"]),
], ids=["float", "int", "literal", "unknown-argument", "unknown-optimizer-argument", "class-path", "dash-value",
        "trainer-int", "unknown-option", "abbreviated-option"])
def test_a_bad_command_line_value_is_one_line(capsys, tmp_path, args, expected):
    assert_one_line(fit_error(capsys, tmp_path, *args), *expected)


def test_a_bad_key_or_value_inside_a_config_file_is_one_line(capsys, tmp_path):
    piece = yaml_file(tmp_path, "model:\n  init_args:\n    nosuch_key: 3\n")
    assert_one_line(fit_error(capsys, tmp_path, "-c", piece), "model.init_args.nosuch_key = 3",
                    "not an argument of lightning_modules.LesionClassifier")
    piece = yaml_file(tmp_path, "trainer:\n  max_epochs: twelve\n")
    assert_one_line(fit_error(capsys, tmp_path, "-c", piece), "trainer.max_epochs = 'twelve'", "expected int")


def test_a_class_that_refuses_its_arguments_is_one_line(capsys, tmp_path):
    """jsonargparse wraps the error of a class built from the config (an unknown timm backbone) in its union dump;
    the line names the key, the class, the reason and the argument."""
    err = fit_error(capsys, tmp_path, "--model.init_args.backbone", "no_such_net")
    assert_one_line(err, "model (lightning_modules.LesionClassifier) could not be built", "no_such_net",
                    "model.init_args.backbone = 'no_such_net'")
    assert err.count("Unknown model") == 1  # the line only: no traceback of the wrapped exception


def test_verbose_switch_prints_the_full_report(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLAB_VERBOSE", "1")
    err = fit_error(capsys, tmp_path, "--model.init_args.optimizer.init_args.lr", "abc")
    assert "Does not validate against any of the Union subtypes" in err and "Given value" in err
    assert "dermlab: error:" not in err
