"""Task files: defaults, relative paths, and errors that name the key and the line."""

import pytest

from dpcdsl.errors import DpcError
from dpcdsl.train.data.task import load_task, task_from_text, task_toml
from tests.conftest import EXAMPLES


def test_example_task_loads():
    task = load_task(EXAMPLES / "synthetic_task.toml")
    assert task.dataset.kind == "synthetic" and task.train.steps == 300
    assert task.cache_dir == EXAMPLES / "../.dpcdsl-cache"


@pytest.mark.parametrize("text, message", [
    ("[train]\nsteps = 0\n", "t.toml:2:1: error: train.steps: Input should be greater than 0"),
    ("[train]\nstep = 3\n", "t.toml:2:1: error: train.step: unknown key. Did you mean 'steps'?"),
    ("backend = 'tf'\n", "t.toml:1:1: error: backend: unknown backend 'tf'. Installed: jax, torch"),
    ("[backbone]\noutput_stride = 32\n", "t.toml:2:1: error: backbone.output_stride"),
    ("[train\n", "t.toml:1:7: error: invalid TOML"),
    ("device = 'banana'\n", "t.toml:1:1: error: device: expected cpu, cuda, cuda:N or mps, "
                            "got 'banana'"),
    ("", "t.toml:1:1: error: the task file is empty: nothing says what to train on"),
    ("# only a comment\n", "the task file is empty"),
    ("[backbone]\ninputs = [16, 32]\n", "backbone: inputs: a backbone at output stride 16 "
                                       "has no stride-32 features"),
])
def test_errors_name_the_key_and_line(text, message):
    with pytest.raises(DpcError) as e:
        task_from_text(text, "t.toml")
    assert message in e.value.render()


def test_all_problems_are_reported_at_once():
    with pytest.raises(DpcError) as e:
        task_from_text("[train]\nsteps = -1\nbatch = 0\n", "t.toml")
    assert len(e.value.diagnostics) == 2


def test_cache_key_follows_what_changes_the_features():
    a = task_from_text("[train]\nsteps = 10\n")
    assert a.cache_key("float16") == task_from_text("[train]\nsteps = 99\n").cache_key("float16")
    assert a.cache_key("float16") != a.cache_key("float32")
    assert a.cache_key("float16") != task_from_text("[backbone]\nseed = 1\n").cache_key("float16")
    assert a.cache_key("float16") != task_from_text("[train]\ncrop = 128\n[dataset]\n"
                                                    "image_size = 128\n").cache_key("float16")


@pytest.mark.parametrize("name, kind", [("cityscapes", "cityscapes"), ("voc", "voc"),
                                        ("person_part", "person_part"), ("folder", "folder")])
def test_example_task_per_dataset(name, kind):
    task = load_task(EXAMPLES / "tasks" / f"{name}.toml")
    assert task.dataset.kind == kind
    assert task.dataset.root is not None and task.dataset.root.is_absolute() is \
        (EXAMPLES / "tasks").is_absolute()


def test_pretrained_file_is_relative_to_the_task_and_keys_the_cache(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"first")
    path = tmp_path / "t.toml"
    path.write_text('[backbone]\nname = "resnet18"\npretrained = true\n'
                    'pretrained_file = "w.safetensors"\n')
    task = load_task(path)
    assert task.backbone.pretrained_file == weights
    key = task.cache_key("float16")
    weights.write_bytes(b"other weights")
    assert load_task(path).cache_key("float16") != key
    plain = task_from_text('[backbone]\nname = "resnet18"\n')
    assert plain.cache_key("float16") == task_from_text(
        '[backbone]\nname = "resnet18"\n').cache_key("float16")


def test_task_toml_writes_a_file_that_reads_back(tmp_path):
    settings = {"cache_dir": tmp_path / "c d", "seed": 3, "dataset": {"image_size": 64},
                "backbone": {"inputs": [16, 4], "pretrained": False},
                "train": {"crop": 64, "lr": 1e12, "bn_momentum": None}, "strategy": {}}
    text = task_toml(settings)
    task = task_from_text(text)
    assert task.cache_dir == tmp_path / "c d" and task.seed == 3
    assert task.backbone.inputs == [16, 4] and task.train.lr == 1e12
    assert task.train.bn_momentum is None and "bn_momentum" not in text


def test_task_toml_refuses_what_a_task_file_refuses():
    with pytest.raises(DpcError, match=r"train.stpes: unknown key. Did you mean 'steps'"):
        task_toml({"train": {"stpes": 8}})
    with pytest.raises(DpcError, match="a dict_keys cannot be written as a TOML value"):
        task_toml({"seed": {1: 2}.keys()})
