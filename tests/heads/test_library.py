"""Every head of the library against the library module it reproduces
(``tests/heads/references.py``): the same parameters in the same order, the same
outputs in eval mode at two sizes, the same outputs and BatchNorm statistics after a
training step, the cost model's parameter count and the FLOP counter's figure, and the
JAX build with the same weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import dpcdsl
from dpcdsl import backends
from dpcdsl.compiler.rewrite import at_output_stride
from dpcdsl.errors import DpcError
from dpcdsl.lang import heads
from dpcdsl.lang.analysis import cost
from tests.heads.references import REFERENCES, Reference

NAMES = sorted(REFERENCES)
BATCH = 2


def test_every_library_head_has_a_reference() -> None:
    assert heads.names() == NAMES


def cell_of(name: str, ref: Reference) -> dpcdsl.Cell:
    return at_output_stride(heads.load(name, **ref.options).concrete(), ref.output_stride)


def pair(name: str) -> tuple[nn.Module, nn.Module, Reference]:
    """(the compiled head, the library's module with the compiled head's weights)."""
    ref = REFERENCES[name]
    torch.manual_seed(0)
    library = ref.build()
    compiled = backends.get("torch").build(cell_of(name, ref), ref.in_channels, seed=1,
                                           bn_momentum=ref.bn_momentum)
    theirs = library.state_dict()
    ours = dict(ref.in_library_order(compiled.state_dict().items()))
    # the same shapes in the same order, up to the trailing 1x1 of a linear layer's
    # weight (a biased 1x1 conv here)
    assert [linear_shape(v) if t.dim() == 2 else tuple(v.shape)
            for v, t in zip(ours.values(), theirs.values())] == \
        [tuple(t.shape) for t in theirs.values()]
    with torch.no_grad():  # random BN statistics too, so that eval mode does real work
        for k, v in ours.items():
            if k.endswith("running_mean"):
                v.normal_()
            elif k.endswith("running_var"):
                v.uniform_(0.5, 2.0)
    library.load_state_dict({k: v.reshape(t.shape)
                             for (k, t), v in zip(theirs.items(), ours.values())})
    return compiled, library, ref


def linear_shape(v: torch.Tensor) -> tuple[int, ...]:
    """A 1x1 conv's weight (out, in, 1, 1) as nn.Linear's (out, in)."""
    assert v.dim() == 4 and tuple(v.shape[2:]) == (1, 1), tuple(v.shape)
    return tuple(v.shape[:2])


def inputs(ref: Reference, which: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, ref.in_channels[i], *ref.sizes[which][i], generator=g)
            for i in ref.in_channels]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def dropout_off(*modules: nn.Module) -> None:
    """Train mode with dropout off: its randomness is not the same in two modules."""
    for module in modules:
        module.train()
        for m in module.modules():
            if isinstance(m, nn.Dropout | nn.Dropout2d):
                m.eval()


@pytest.mark.parametrize("name", NAMES)
def test_same_parameters_in_the_same_order(name: str) -> None:
    compiled, library, ref = pair(name)
    assert [p.numel() for _, p in ref.in_library_order(compiled.named_parameters())] == \
        [p.numel() for p in library.parameters()]


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_same_outputs_in_eval_mode(name: str, which: int) -> None:
    compiled, library, ref = pair(name)
    xs = inputs(ref, which)
    with torch.no_grad():
        assert rel_err(compiled.eval()(*xs), ref.call(library.eval(), xs)) <= 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_same_after_a_training_step(name: str) -> None:
    compiled, library, ref = pair(name)
    xs = inputs(ref, 0, seed=3)
    dropout_off(compiled, library)
    for module, run in ((compiled, lambda: compiled(*xs)),
                        (library, lambda: ref.call(library, xs))):
        opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
        out = run()
        (out.square().mean() + out.mean()).backward()
        opt.step()
    for (k, a), b in zip(ref.in_library_order(compiled.state_dict().items()),
                         library.state_dict().values()):
        torch.testing.assert_close(a.reshape(b.shape), b, rtol=1e-4, atol=1e-5, msg=k)
    with torch.no_grad():
        assert rel_err(compiled.eval()(*xs), ref.call(library.eval(), xs)) <= 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_cost_model_counts_the_library_module(name: str) -> None:
    compiled, library, ref = pair(name)
    cell = cell_of(name, ref)
    report = cost(cell, ref.in_channels, ref.sizes[1])
    assert report.params == sum(p.numel() for p in library.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        ref.call(library.eval(), inputs(ref, 1))
    assert counter.get_total_flops() == 2 * report.madds * BATCH  # madds are per image
    # the compiled head skips the atrous taps that read only padding at this size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        compiled.eval()(*inputs(ref, 1))
    assert counter.get_total_flops() == 2 * report.computed_madds * BATCH


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_the_jax_build_equals_the_library_module(name: str) -> None:
    compiled, library, ref = pair(name)
    jax_backend = backends.get("jax")
    module = jax_backend.build(cell_of(name, ref), ref.in_channels, seed=2,
                               bn_momentum=ref.bn_momentum)
    jax_backend.import_weights(module, backends.get("torch").export_weights(compiled))
    xs = inputs(ref, 1)
    with torch.no_grad():
        want = ref.call(library.eval(), xs).numpy()
    got = jax_backend.forward(module, [x.numpy() for x in xs])
    assert float(np.abs(got - want).max() / np.abs(want).max()) <= 1e-5


def test_load_takes_the_heads_parameters_and_names_wrong_ones() -> None:
    cell = heads.load("lraspp", classes=19).concrete()
    assert {n.name: dict(n.attrs).get("channels") for n in cell.nodes}["low_classifier"] == 19
    with pytest.raises(DpcError, match="has no parameter 'clases'. Did you mean 'classes'"):
        heads.load("lraspp", clases=19)
    with pytest.raises(DpcError, match="no head named 'lrasp' in the library. Did you mean 'lraspp'"):
        heads.load("lrasp")


@pytest.mark.slow
def test_heads_by_name_on_the_command_line() -> None:
    def dpcc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *args],
                              capture_output=True, text=True, timeout=120)

    r = dpcc("heads")
    assert r.returncode == 0 and "torchvision 0.29's LRASPPHead" in r.stdout
    r = dpcc("compile", "lraspp", "--in-channels", "low=40", "--in-channels", "high=960")
    assert r.returncode == 0 and "class Lraspp(nn.Module)" in r.stdout
    r = dpcc("count", "lrasp")
    message = " ".join(r.stderr.replace("│", " ").split())
    assert r.returncode == 2 and "Did you mean 'lraspp'" in message


def test_the_docs_show_every_head_as_it_is() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "heads.md").read_text()
    for name in heads.names():
        assert f"### `{name}`\n\n```\n{heads.path(name).read_text().rstrip()}\n```" in docs


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_the_jax_build_takes_the_same_training_step(name: str) -> None:
    """One SGD step in train mode (dropout off) from the same weights: the JAX build's
    weights and BatchNorm statistics afterwards equal the library module's."""
    import jax.numpy as jnp
    import optax
    from dpcdsl_jax import optimizer
    from flax import nnx

    compiled, library, ref = pair(name)
    jax_backend = backends.get("jax")
    module = jax_backend.build(cell_of(name, ref), ref.in_channels, seed=2,
                               bn_momentum=ref.bn_momentum)
    jax_backend.import_weights(module, backends.get("torch").export_weights(compiled))
    xs = inputs(ref, 0, seed=3)

    dropout_off(library)
    opt = torch.optim.SGD(library.parameters(), lr=0.1, momentum=0.9)
    out = ref.call(library, xs)
    (out.square().mean() + out.mean()).backward()
    opt.step()

    module.train()
    for _, m in nnx.iter_graph(module):
        if isinstance(m, nnx.Dropout):
            m.deterministic = True
    jopt = optimizer(module, optax.sgd(0.1, momentum=0.9))

    def loss(m: nnx.Module) -> jnp.ndarray:
        y = m(*[jnp.asarray(x.numpy().transpose(0, 2, 3, 1)) for x in xs])
        return jnp.mean(jnp.square(y)) + jnp.mean(y)

    @nnx.jit  # one compiled step, as training runs it
    def step(m: nnx.Module, o: nnx.Optimizer) -> None:
        _, grads = nnx.value_and_grad(loss)(m)
        o.update(m, grads)

    step(module, jopt)
    theirs = {k: v for (k, _), v in zip(ref.in_library_order(compiled.state_dict().items()),
                                        library.state_dict().values())}
    got = jax_backend.export_weights(module)
    assert set(got) == {k for k in theirs if not k.endswith("num_batches_tracked")}
    for k, v in got.items():
        np.testing.assert_allclose(v.reshape(theirs[k].shape), theirs[k].numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=k)
