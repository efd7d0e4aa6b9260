"""`tc.runner.config`: the RunConfig, its validation, flags and flagfiles."""

import re

import pytest

from tc.runner import command_line
from tc.runner import config as config_lib


def test_flagfile_reproduces_the_config(tmp_path, small_config):
    from absl import flags

    original = small_config(loss="gradient_decay", beta=0.3, beta_schedule="cosine",
                            model_options="depth=1;width=32", init_logit_norm="2.5")
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text(original.to_flagfile())
    values = flags.FlagValues()
    config_lib.define_flags(values)
    values(["tc.train", f"--flagfile={flagfile}", "--verbose=0", "--tensorboard=false"])
    assert config_lib.from_flags(values) == original


@pytest.mark.parametrize("overrides, match", [
    (dict(beta=0.0), "--beta=0.0"), (dict(learning_rate=-1.0), "--learning_rate=-1.0"),
    (dict(loss="focal"), "valid values: 'temperature', 'gradient_decay'"),
    (dict(momentum=1.0), "--momentum=1.0"), (dict(betas="0.1,x"), "--betas='0.1,x'"),
    (dict(betas="0.1,0.1"), "repeats"), (dict(init_logit_norm="-2"), "--init_logit_norm"),
    (dict(model_options="weight_decay=1"), "--weight_decay"),
    (dict(seeds="0,1.5"), "--seeds='0,1.5' must be a comma-separated list of numbers"),
    (dict(learning_rates="0.1,0"), "--learning_rates='0.1,0': \\[0.0\\] not valid"),
    (dict(readout_init_scales="-1"), "--readout_init_scales"),
    (dict(grid="outer"), "valid values: 'product', 'zip'"),
    (dict(process_id=1), "--process_id only apply to --strategy=multi_worker"),
    (dict(strategy="multi_worker", num_processes=2, process_id=2),
     "--process_id=2 is not valid: it must be in \\[0, 1\\]"),
    (dict(strategy="multi_worker", num_processes=-1), "--num_processes=-1"),
])
def test_validation_names_the_flag_and_what_is_valid(overrides, match):
    with pytest.raises(ValueError, match=match):
        config_lib.RunConfig(**overrides).validate()


def test_fused_steps_are_the_jax_backends_and_one_step_a_call_is_every_backends():
    import keras

    config_lib.RunConfig(steps_per_call=1).validate()
    fused = config_lib.RunConfig(steps_per_call=8)
    if keras.backend.backend() == "jax":
        assert fused.validate().steps_per_call == 8
    else:
        with pytest.raises(ValueError, match=f"--steps_per_call=8 fuses steps on the JAX backend "
                                             f"only \\(this is {keras.backend.backend()}\\)"):
            fused.validate()


def test_options_parse_to_literals_where_they_can():
    assert config_lib.parse_options("a=1; b=relu;c=(1, 2)", "x") == {
        "a": 1, "b": "relu", "c": (1, 2)}
    with pytest.raises(ValueError, match="--x: 'nokey' is not a key=value pair"):
        config_lib.parse_options("nokey", "x")


def test_unset_newer_flags_stay_out_of_the_flagfile():
    text = config_lib.RunConfig().to_flagfile()
    assert "--betas=" not in text and "--verbose" not in text and "--overwrite" not in text
    assert "--betas=0.1,1" in config_lib.RunConfig(betas="0.1,1").to_flagfile()
    assert "--shuffle_seed" not in text and "--grid" not in text
    assert "--shuffle_seed=0" in config_lib.RunConfig(seed=1, shuffle_seed=0).to_flagfile()
    # Every process of a multi-process run writes and checks the same flags.txt.
    one_process = config_lib.RunConfig(strategy="multi_worker", num_processes=2, process_id=1,
                                       coordinator_address="127.0.0.1:1234")
    assert one_process.to_flagfile() == config_lib.RunConfig(
        strategy="multi_worker").to_flagfile()


def test_from_flagfile_reads_what_to_flagfile_writes_and_refuses_other_lines():
    original = config_lib.RunConfig(beta=0.3, seed=2, shuffle_seed=0, init_logit_norm="2.5",
                                    tensorboard=False, lr_scaling="inverse_beta_squared")
    text = "# a comment\n" + original.to_flagfile()
    assert config_lib.RunConfig.from_flagfile(text) == original
    assert original.data_order_seed == 0 and original.effective_learning_rate == 0.05 / 0.09
    assert config_lib.RunConfig(beta=0.5, lr_scaling="inverse_beta").effective_learning_rate == 0.1
    with pytest.raises(ValueError, match="'--no_such_flag=1' is not a flag of tc.train"):
        config_lib.RunConfig.from_flagfile("--no_such_flag=1\n")


def test_sweep_axes_list_only_the_lists_that_are_set():
    config = config_lib.RunConfig(betas="0.1,1", seeds="0,1,2")
    assert config.sweep_axes == {"beta": (0.1, 1.0), "seed": (0, 1, 2)} and config.is_packed
    assert not config_lib.RunConfig().is_packed


def test_an_output_dir_that_is_a_file_or_under_one_is_refused_before_anything_is_written(
        tmp_path, small_config):
    from tc.runner import search

    (tmp_path / "notes.txt").write_text("keep")
    for path, message in ((tmp_path / "notes.txt", " is a file; give a directory"),
                          (tmp_path / "notes.txt" / "run", " is under .*, which is a file")):
        pattern = re.escape(f"--output_dir={path}") + message
        with pytest.raises(ValueError, match=pattern):
            small_config(output_dir=str(path)).validate()
        with pytest.raises(ValueError, match=pattern):
            search.SearchConfig(output_dir=str(path)).validate()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "keep"
    small_config(output_dir=str(tmp_path / "new" / "run")).validate()  # made when it runs


@pytest.mark.parametrize("argument, match", [
    ("--beta=1e-400", "1e-400 underflows to 0"), ("--learning_rate=1e999", "overflows"),
    ("--beta=0.0", None), ("--beta=2.5e-3", None), ("--beta=inf", None)])
def test_a_float_flag_refuses_a_literal_float64_cannot_hold(argument, match):
    from absl import flags

    values = flags.FlagValues()
    config_lib.define_flags(values)
    if match is None:  # parsed as Python parses it (validation judges the value later)
        values(["tc.train", argument])
        assert values[argument[2:].split("=")[0]].value == float(argument.split("=")[1])
        return
    with pytest.raises(flags.IllegalFlagValueError, match=match):
        values(["tc.train", argument])


def test_a_flagfile_that_is_not_text_is_a_message_with_exit_code_1(tmp_path, capsys):
    binary = tmp_path / "run.cfg"
    binary.write_bytes(b"--beta=1\n\x8f\xff\x00\x13")
    with pytest.raises(SystemExit) as exited:
        command_line.parse_command_line(["tc.train", f"--flagfile={binary}"])
    assert exited.value.code == 1
    message = capsys.readouterr().err
    assert f"--flagfile={binary} is not a text file of flags (byte 9 is not UTF-8)" in message


def test_a_bad_model_option_value_names_the_flags(tmp_path, small_config):
    from tc.runner import assembly

    config = small_config(model="mlp", model_options="depth=0", output_dir=str(tmp_path / "r"))
    with pytest.raises(assembly.ConfigurationError,
                       match=re.escape("--model=mlp --model_options='depth=0': `depth` must be "
                                       "an integer >= 1; got 0.")):
        assembly.run(config)
    assert not (tmp_path / "r").exists()
