"""The search's configuration: options grouped by concern, each declared once, and the
command line's options made from the declarations."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dpcdsl import cli
from dpcdsl.errors import DpcError
from dpcdsl.search import driver
from dpcdsl.search.config import FLAT, GROUPS, IDENTITY, SearchConfig, fields


def test_options_by_their_flat_names_land_in_their_groups() -> None:
    cfg = SearchConfig("s.dpc", "t.toml", trials=7, workers=2, storage="sqlite:///x.db",
                       strategy="evolution", run_dir="runs/x", max_madds=5)
    assert cfg.space.file == Path("s.dpc") and cfg.task.file == Path("t.toml")
    assert (cfg.strategy.name, cfg.strategy.trials, cfg.strategy.max_madds) == \
        ("evolution", 7, 5)
    assert cfg.execution.workers == 2 and cfg.execution.executor == "local"
    assert cfg.storage.url == "sqlite:///x.db" and cfg.storage.run_dir == Path("runs/x")
    assert set(GROUPS) == {"space", "task", "strategy", "execution", "storage"}


def test_an_unknown_option_says_what_is_near() -> None:
    with pytest.raises(TypeError, match="no option 'trails'. Did you mean 'trials'"):
        SearchConfig("s.dpc", "t.toml", trails=3)


def test_every_flat_name_is_one_field() -> None:
    flats = [f.flat for f in fields()]
    assert len(flats) == len(set(flats)) == len(FLAT)


def test_the_identity_keys_are_what_identity_records() -> None:
    from dpcdsl.lang.space import Space
    from dpcdsl.train.data.task import task_from_text

    space = Space.from_text("cell s(x) { return conv(x, kernel = {1, 3}) }")
    task = task_from_text("[dataset]\nkind = \"synthetic\"\n")
    cfg = SearchConfig("s.dpc", "t.toml", max_madds=10, latency="torch", max_latency=5.0)
    assert set(driver.identity(cfg, space, task, "torch")) == set(IDENTITY) - {"evaluator"}
    # a search scored by a supernet holds it as trained (its folder's record)
    scored = SearchConfig("s.dpc", "t.toml", evaluator="supernet:/nowhere")
    with pytest.raises(DpcError, match="holds no supernet training"):
        driver.identity(scored, space, task, "torch")


def test_every_declared_option_is_on_the_command_line() -> None:
    result = CliRunner().invoke(cli.app, ["search", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for f in fields():
        if f.meta["cli"]:
            name = f.meta.get("cli_name") or f.flat.replace("_", "-")
            assert f"--{name}" in result.output, name


def test_the_command_line_maps_each_option_to_the_config(monkeypatch, tmp_path) -> None:
    """The real command line's parsing, up to the search (which is replaced here, to
    see what it is given)."""
    import optuna

    given: list[SearchConfig] = []

    def fake_search(cfg: SearchConfig) -> optuna.Study:
        given.append(cfg)
        return optuna.create_study()  # no trial finished: the command exits 1

    monkeypatch.setattr(driver, "search", fake_search)
    (tmp_path / "s.dpc").write_text("cell s(x) { return conv(x, kernel = {1, 3}) }\n")
    (tmp_path / "t.toml").write_text("[dataset]\nkind = \"synthetic\"\n")
    result = CliRunner().invoke(cli.app, [
        "search", str(tmp_path / "s.dpc"), "--task", str(tmp_path / "t.toml"),
        "--trials", "3", "--strategy", "evolution", "--setting", "population=2",
        "--executor", "pool", "--workers", "2", "--gpus", "0,1", "--max-madds", "0.5B",
        "--prune", "asha", "--prune-setting", "reduction=3", "--allow-changed", "task",
        "--resume", "--retry-failed", "--storage", "sqlite:///x.db",
        "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 1, result.output
    (cfg,) = given
    assert cfg.strategy.name == "evolution" and cfg.strategy.trials == 3
    assert dict(cfg.strategy.settings) == {"population": 2}
    assert cfg.strategy.prune == "asha" and dict(cfg.strategy.prune_settings) == \
        {"reduction": 3}
    assert cfg.strategy.max_madds == 500_000_000 and cfg.strategy.retry_failed
    assert (cfg.execution.executor, cfg.execution.workers, cfg.execution.gpus) == \
        ("pool", 2, ["0", "1"])
    assert cfg.execution.progress == "none"
    assert cfg.storage.allow_changed == ("task",) and cfg.storage.resume
    assert cfg.storage.url == "sqlite:///x.db"
    assert cfg.storage.run_dir == tmp_path / "run"


def test_the_command_line_defaults_to_auto_placement(monkeypatch, tmp_path) -> None:
    import optuna

    given: list[SearchConfig] = []
    monkeypatch.setattr(driver, "search", lambda cfg: given.append(cfg) or
                        optuna.create_study())
    (tmp_path / "s.dpc").write_text("cell s(x) { return conv(x, kernel = {1, 3}) }\n")
    (tmp_path / "t.toml").write_text("[dataset]\nkind = \"synthetic\"\n")
    CliRunner().invoke(cli.app, ["search", str(tmp_path / "s.dpc"), "--task",
                                 str(tmp_path / "t.toml"), "--quiet"])
    (cfg,) = given
    assert cfg.execution.executor == "auto" and cfg.strategy.trials == 20
    assert cfg.storage.run_dir == Path("runs/search") and cfg.task.baseline is None
