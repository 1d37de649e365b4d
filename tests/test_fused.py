"""Fused training (``--fuse K``): several heads trained in one step on the same
batches give each head what it gets trained alone, in both backends."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.train.data.task import task_from_text, task_toml
from dpcdsl.train.proxy import ProxyResult, train, train_fused
from tests.test_proxy import SMALL

# different structures, each with dropout (the heads' random streams must stay apart)
CELLS = [
    "cell a(x, channels = 16) { b = sepconv(x, rate = (3, 1)) "
    "return conv(dropout(concat(b, pool(x)), p = 0.5), kernel = 1) }",
    "cell b(x, channels = 16) { b = conv(x, kernel = 3) "
    "return dropout(conv(b, kernel = 1), p = 0.3, spatial = true) }",
    "cell c(x, channels = 8) { b = sepconv(x, kernel = 5, rate = (1, 2)) "
    "return dropout(sum(b, conv(x, kernel = 1)), p = 0.5) }",
]


def cells():
    return [Space.from_text(t).concrete() for t in CELLS]


@pytest.fixture(scope="module")
def task(shared_cache):
    return task_from_text(task_toml({**SMALL, "cache_dir": shared_cache}))


def same(fused: ProxyResult, alone: ProxyResult) -> None:
    assert fused.hash == alone.hash and fused.steps == alone.steps
    np.testing.assert_allclose(fused.losses, alone.losses, rtol=1e-5, atol=1e-6)
    assert [k for k, _ in fused.evals] == [k for k, _ in alone.evals]
    np.testing.assert_allclose([m for _, m in fused.evals], [m for _, m in alone.evals],
                               atol=1e-3)
    assert (fused.params, fused.madds) == (alone.params, alone.madds)


@pytest.fixture(scope="module")
def alone(task):
    """Each cell trained alone, once per backend for the tests of this module (they are
    one xdist group, so one worker trains them)."""
    done: dict[str, list[ProxyResult]] = {}

    def get(backend: str) -> list[ProxyResult]:
        if backend not in done:
            done[backend] = [train(c, task, backend=backend) for c in cells()]
        return done[backend]

    return get


FUSED = pytest.mark.xdist_group("fused")


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.slow
@FUSED
def test_fused_heads_train_as_they_would_alone(task, alone, backend):
    alone = alone(backend)
    fused = train_fused(cells(), task, backend=backend)
    for f, a in zip(fused, alone, strict=True):
        assert isinstance(f, ProxyResult) and f.fused == 3 and a.fused == 1
        same(f, a)
    # dropout draws differ between heads: with one shared stream they would not match
    assert len({round(r.losses[-1], 6) for r in alone}) == 3


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.slow
@FUSED
def test_a_head_pruned_stops_alone_and_the_others_train_on(task, alone, backend):
    def prune(step, miou):
        raise optuna.TrialPruned(f"pruned at step {step}")

    alone = alone(backend)[::2]
    fused = train_fused(cells(), task, backend=backend, callbacks=[None, prune, None])
    assert isinstance(fused[1], optuna.TrialPruned) and "step 10" in str(fused[1])
    same(fused[0], alone[0])
    same(fused[2], alone[1])


@pytest.mark.slow
def test_a_pruned_cell_trained_alone_raises(task):
    def prune(step, miou):
        raise optuna.TrialPruned("stop")

    with pytest.raises(optuna.TrialPruned):
        train(cells()[0], task, backend="torch", callback=prune)


def test_cells_reading_different_inputs_do_not_fuse(task):
    two = Space.from_text("cell two(low, high, channels = 8) "
                          "{ return conv(concat(low, upsample(high, like = low)), kernel = 1) }")
    with pytest.raises(DpcError, match="read the same inputs"):
        train_fused([cells()[0], two.concrete()], task, backend="torch")


@pytest.mark.slow
def test_one_head_draws_its_dropout_as_it_always_did(task):
    """A head trained alone: the seed, the head's construction, then its dropout, in
    that order (the order of releases before fused training), so earlier studies'
    results are what this release gives the same cell."""
    import dpcdsl_torch
    import torch
    from torch.nn import functional as F

    from dpcdsl.lang.analysis import infer_channels
    from dpcdsl.train.proxy import ensure_cache, head_cell, head_weights
    from dpcdsl.train.training import batches

    cell = cells()[0]
    head = head_cell(cell, task)
    cache = ensure_cache(task, progress=False)
    in_channels = cache.in_channels(head, task)
    torch.manual_seed(task.seed)
    module = dpcdsl_torch.ProxyHead(
        dpcdsl_torch.build(head, in_channels, seed=task.seed,
                           bn_momentum=task.train.momentum_of_bn),
        infer_channels(head, in_channels)[head.output], cache.num_classes)
    dpcdsl_torch.import_weights(module, head_weights(head, cache, task))
    idx = next(batches(len(cache.labels("train")), task.train.batch, task.seed))
    x = torch.from_numpy(np.asarray(cache.inputs(head, task, "train")[0][idx], np.float32))
    y = torch.from_numpy(np.asarray(cache.labels("train")[idx]).astype(np.int64))
    logits = F.interpolate(module.train()(x), size=y.shape[-2:], mode="bilinear",
                           align_corners=True)
    first = F.cross_entropy(logits, y, ignore_index=cache.ignore_index).item()
    assert train(cell, task, backend="torch").losses[0] == first
