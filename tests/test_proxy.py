"""The proxy task end to end: real cache, real training loops in both backends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.train.data.task import load_task, task_from_text, task_toml
from dpcdsl.train.proxy import Diverged, ProxyResult, train
from tests.conftest import EXAMPLES, SMALL_TASK, merged

ONE_BY_ONE = "cell one(x, channels = 256) { return conv(x, kernel = 1) }"
#: the small task, trained for 20 steps
SMALL = merged(SMALL_TASK, {"train": {"steps": 20, "eval_every": 10}})


@pytest.fixture
def small(shared_cache):
    """The text of :data:`SMALL` with ``changes``, its features in the shared cache."""
    def text(**changes) -> str:
        return task_toml(merged({**SMALL, "cache_dir": shared_cache}, changes))
    return text


def cell_of(text_or_path):
    if str(text_or_path).endswith(".dpc"):
        return Space.from_file(text_or_path).concrete()
    return Space.from_text(text_or_path).concrete()


# session-wide: kept however xdist orders this group's tests among others
@pytest.fixture(scope="session")
def synthetic_results(shared_cache) -> dict[str, ProxyResult]:
    """The example task on synthetic scenes, for a third of its 300 steps: at 100 the
    gap between the heads is already about 35 mIOU (ASPP 82.4, a 1x1 head 47.2; 87.6
    and 47.5 at 150, 89.0 and 48.1 at 300), and each training costs a third as much."""
    task = load_task(EXAMPLES / "synthetic_task.toml")
    train_half = task.train.model_copy(update={"steps": 100, "eval_every": 50})
    task = task.model_copy(update={"cache_dir": shared_cache, "train": train_half})
    return {
        "aspp/torch": train(cell_of(EXAMPLES / "aspp.dpc"), task, backend="torch"),
        "1x1/torch": train(cell_of(ONE_BY_ONE), task, backend="torch"),
        "aspp/jax": train(cell_of(EXAMPLES / "aspp.dpc"), task, backend="jax"),
    }


@pytest.mark.slow
@pytest.mark.xdist_group("synthetic")  # one worker trains the fixture
def test_wide_context_beats_a_1x1_head(synthetic_results):
    aspp, one = synthetic_results["aspp/torch"], synthetic_results["1x1/torch"]
    assert aspp.miou >= one.miou + 5, (aspp.miou, one.miou)


@pytest.mark.slow
@pytest.mark.xdist_group("synthetic")  # one worker trains the fixture
def test_torch_and_jax_trainers_agree(synthetic_results):
    torch_r, jax_r = synthetic_results["aspp/torch"], synthetic_results["aspp/jax"]
    assert abs(torch_r.miou - jax_r.miou) <= 2, (torch_r.miou, jax_r.miou)
    assert torch_r.params == jax_r.params and torch_r.madds == jax_r.madds


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.slow
def test_deterministic_for_a_seed(small, backend):
    task = task_from_text(small())
    a = train(cell_of(ONE_BY_ONE), task, backend=backend)
    b = train(cell_of(ONE_BY_ONE), task, backend=backend)
    assert a.losses == b.losses and a.miou == b.miou
    assert a.steps == 20 and [k for k, _ in a.evals] == [10, 20]
    assert a.params == 256 * 64 + 2 * 256 and a.hash == cell_of(ONE_BY_ONE).hash


@pytest.mark.slow
def test_callback_sees_every_evaluation_and_can_stop(small):
    task = task_from_text(small())
    seen = []

    class Stop(Exception):
        pass

    def callback(step, miou):
        seen.append((step, miou))
        raise Stop

    with pytest.raises(Stop):
        train(cell_of(ONE_BY_ONE), task, callback=callback)
    assert [s for s, _ in seen] == [10]


@pytest.mark.slow
def test_divergence_is_a_clear_failure(small):
    task = task_from_text(small(train={"lr": 1e12}))
    with pytest.raises(Diverged, match=r"cell 'one': the loss is (nan|inf) at step \d+ of 20"):
        train(cell_of(ONE_BY_ONE), task)
    assert issubclass(Diverged, DpcError)


@pytest.mark.slow
def test_dpcc_proxy_prints_its_result(tmp_path, small):
    task = tmp_path / "task.toml"
    task.write_text(small())
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "proxy", str(EXAMPLES / "aspp.dpc"),
                        "--task", str(task), "--format", "json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["cell"] == "aspp" and result["steps"] == 20 and 0 <= result["miou"] <= 100
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "cache", "--task", str(task)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "16 train and 8 val images; features 64x4x4 at stride 16" in r.stdout


@pytest.mark.slow
def test_output_stride_8_trains_the_end_to_end_head(small, monkeypatch):
    """At output stride 8 the proxy trains the same architecture as the full model's
    head: the rates written for 16 doubled."""
    import dpcdsl_torch

    task = task_from_text(small(backbone={"output_stride": 8}))
    cell = cell_of("cell c(x, channels = 8) { b = sepconv(x, rate = (3, 1)) "
                   "return conv(concat(b, pool(x)), kernel = 1) }")
    heads = []
    real = dpcdsl_torch.proxy_steps

    def spy(cells, *args):
        step, predict = real(cells, *args)
        heads.extend(h.cell for h in step.heads)
        return step, predict

    monkeypatch.setattr(dpcdsl_torch, "proxy_steps", spy)
    task = task.model_copy(update={"train": task.train.model_copy(
        update={"steps": 1, "eval_every": 1})})
    train(cell, task, backend="torch")
    proxy_source = dpcdsl_torch.source_of(heads[0])
    assert "rate=(6, 2)" in proxy_source
    model = dpcdsl_torch.SegmentationModel(dpcdsl_torch.backbone("tiny", 8, False), cell, 5,
                                           bn_momentum=task.train.momentum_of_bn)
    assert proxy_source == dpcdsl_torch.source_of(model.head)


@pytest.mark.slow
def test_the_jax_proxy_runs_without_torch_once_the_cache_exists(tmp_path, small):
    """Only the feature cache needs a backend with a backbone (torch: the JAX backend has
    no feature extractor); training on a built cache with JAX never imports torch."""
    from dpcdsl.train.proxy import ensure_cache

    task_file = tmp_path / "task.toml"
    task_file.write_text(small(backend="jax"))
    ensure_cache(load_task(task_file), progress=False)
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "from dpcdsl.train.data.task import load_task\n"
        "from dpcdsl.train.proxy import train\n"
        "from dpcdsl.lang.space import Space\n"
        f"task = load_task({str(task_file)!r})\n"
        f"cell = Space.from_text({ONE_BY_ONE!r}).concrete()\n"
        "r = train(cell, task)\n"
        "print(r.backend, r.steps, 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["jax", "20", "False"]


@pytest.mark.slow
def test_the_loss_at_the_features_size_in_both_backends(small, monkeypatch):
    from dpcdsl import backends

    cheap = task_from_text(small(train={"proxy_loss_stride": 16}))
    seen: dict[str, set] = {}
    results = {}
    for name in ("torch", "jax"):
        trainer = backends.resolve(name, "proxy_steps")
        real = trainer.proxy_steps

        def spy(*args, real=real, name=name):
            step, predict = real(*args)

            def watched(features, labels, active):
                seen.setdefault(name, set()).add((labels.shape, features[0].shape[-2:]))
                return step(features, labels, active)
            return watched, predict

        monkeypatch.setattr(trainer, "proxy_steps", spy)
        results[name] = train(cell_of(ONE_BY_ONE), cheap, backend=name)
    # a 64 crop at output stride 16: 4x4 features, and the labels the loss sees are 4x4
    assert seen["torch"] == seen["jax"] == {((4, 4, 4), (4, 4))}
    full = train(cell_of(ONE_BY_ONE), task_from_text(small()), backend="torch")
    assert results["torch"].losses[0] != pytest.approx(full.losses[0], abs=1e-3)
    # the same computation in both backends
    assert results["torch"].losses == pytest.approx(results["jax"].losses, rel=1e-3, abs=1e-4)


def test_the_loss_stride_is_checked_and_kept_out_of_the_cache_key(small):
    with pytest.raises(DpcError, match="proxy_loss_stride"):
        task_from_text(small(train={"proxy_loss_stride": 0}))
    cheap = task_from_text(small(train={"proxy_loss_stride": 16}))
    assert cheap.cache_key("float32") == task_from_text(small()).cache_key("float32")


@pytest.mark.slow
def test_threads_device_and_seed_are_options_of_every_training_command(task_file):
    """proxy, train, rerank and cache take --threads, --device and --seed, say what they
    run with, and the seed decides the result."""
    task = task_file()

    def proxy(*options: str) -> tuple[dict, str]:
        r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "proxy",
                            str(EXAMPLES / "aspp.dpc"), "--task", str(task), "--format",
                            "json", *options], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        return {k: v for k, v in result.items() if k not in ("wall_s", "timings")}, r.stderr

    first, said = proxy("--threads", "1", "--seed", "1", "--device", "cpu")
    assert "torch backend on cpu, 1 CPU thread, seed 1" in said
    again, _ = proxy("--threads", "1", "--seed", "1")
    other, _ = proxy("--threads", "1", "--seed", "2")
    assert first == again and first != other
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "proxy", str(EXAMPLES / "aspp.dpc"),
                        "--task", str(task), "--device", "gpu0"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "expected cpu, cuda, cuda:N or mps, got 'gpu0'" in r.stderr
    for command in ("cache", "train", "rerank"):
        r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", command, "--help"],
                           capture_output=True, text=True, timeout=120)
        assert all(o in r.stdout for o in ("--threads", "--device", "--seed")), command


@pytest.mark.slow
def test_a_head_with_its_own_classifier_gets_the_task_classes_and_says_so(task_file):
    task = task_file()  # the small task: synthetic scenes of 5 classes
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "proxy", "fcn", "--task", str(task),
                        "--format", "json", "--threads", "1"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "note: cell 'fcn' ends in its own classifier: its classes are set to the task's 5" \
        in r.stderr
    # the head trained is the one with 5 classes, not torchvision's 21
    from dpcdsl.lang.analysis import cost
    from dpcdsl.lang.heads import with_options

    def params(classes: int) -> int:
        head = with_options(EXAMPLES / "heads" / "fcn.dpc", classes=classes).concrete()
        return cost(head, 64, (4, 4)).params  # the small task's 64 channels at stride 16

    assert json.loads(r.stdout)["params"] == params(5) != params(21)
