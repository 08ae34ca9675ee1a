import pytest

from discover.config import ConfigError, RunConfig, load_config_file


def test_file_values_are_typed_and_unknown_keys_rejected(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('space = "cfr_variants"\nbudget = 12\nseeds = ["cfr_plus"]\n[eval_options]\niterations = 100\n')
    cfg = RunConfig.from_mapping(load_config_file(f))
    assert cfg.budget == 12 and cfg.seeds == ("cfr_plus",) and cfg.eval_options == {"iterations": 100}
    with pytest.raises(ConfigError, match="unknown setting"):
        RunConfig.from_mapping({"budgett": 3})
    with pytest.raises(ConfigError, match="budget must be"):
        RunConfig.from_mapping({"budget": "many"})
    with pytest.raises(ConfigError, match="at least 1"):
        RunConfig.from_mapping({"budget": 0})


def test_malformed_file_is_one_clear_error(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("budget = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.toml")


def test_round_trip_through_json():
    cfg = RunConfig(budget=5, seeds=("cfr", "cfr_plus"), workers=2)
    assert RunConfig.from_mapping(cfg.to_json()) == cfg
