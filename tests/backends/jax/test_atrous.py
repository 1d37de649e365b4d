"""The JAX backend's atrous convs run only the taps that can touch real pixels: the
same outputs and gradients as the full conv at map sizes around each rate, and fewer
FLOPs in XLA's own count."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dpcdsl_jax._layers import atrous
from flax import nnx


def make(kernel: int, rate: int, groups: int, stride: int = 1) -> nnx.Conv:
    pad = rate * (kernel - 1) // 2
    return nnx.Conv(6, 6, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                    kernel_dilation=(rate, rate), feature_group_count=groups, use_bias=True,
                    rngs=nnx.Rngs(0))


CASES = [(k, r, n, groups) for k in (3, 5) for r in (2, 7) for n in (r - 1, r, r + 1, 2 * r)
         for groups in (1, 6)] + [(1, 1, n, groups) for n in (1, 5) for groups in (1, 6)]


@pytest.mark.parametrize(("kernel", "rate", "size", "groups"), CASES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.slow
def test_same_outputs_and_gradients_as_the_full_conv(kernel, rate, size, groups, stride):
    conv = make(kernel, rate, groups, stride)
    x = jax.random.normal(jax.random.key(0), (2, size, size + 3, 6))
    g = jax.random.normal(jax.random.key(1), conv(x).shape)
    graphdef, state = nnx.split(conv)

    def loss(x, state, specialised):
        c = nnx.merge(graphdef, state)
        return jnp.sum((atrous(x, c) if specialised else c(x)) * g)

    # jitted, as training runs it: one compiled program each way (eagerly, each
    # primitive compiles on its own, 2.3x the time)
    both = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)
    (v1, g1), (v2, g2) = (both(x, state, s) for s in (True, False))
    np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-4)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(("size", "window"), [((33, 33), (3, 3)), ((12, 33), (1, 3)),
                                              ((12, 12), (1, 1))])
@pytest.mark.slow
def test_a_rate_at_least_the_map_runs_only_the_centre(monkeypatch, size, window):
    """A 3x3 conv of rate 12: the whole kernel on a 33x33 map, its centre row on 12x33,
    the centre alone on 12x12: the convolution that jit traces on a GPU, and the width
    of the one matrix product on the CPU (8 channels out per tap)."""
    conv = nnx.Conv(8, 8, (3, 3), padding=((12, 12), (12, 12)), kernel_dilation=(12, 12),
                    use_bias=False, rngs=nnx.Rngs(0))
    x = jnp.ones((1, *size, 8))
    cpu = jax.make_jaxpr(lambda x: atrous(x, conv))(x)
    widths = [e.outvars[0].aval.shape[-1] for e in cpu.eqns if e.primitive.name == "dot_general"]
    assert widths == [8 * window[0] * window[1]]  # the centre alone: a 1x1 conv's product
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    gpu = jax.make_jaxpr(lambda x: atrous(x, conv))(x)
    convs = [e for e in gpu.eqns if e.primitive.name == "conv_general_dilated"]
    assert [tuple(e.invars[1].aval.shape[:2]) for e in convs] == [window]


@pytest.mark.parametrize(("platform", "convs"), [("cpu", 0), ("gpu", 1), ("tpu", 1)])
@pytest.mark.parametrize("groups", [1, 6])
@pytest.mark.slow
def test_a_conv_is_shifted_slices_on_the_cpu_and_xla_elsewhere(monkeypatch, platform, convs,
                                                               groups):
    conv = make(3, 2, groups=groups)
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 6))
    expected = conv(x)
    monkeypatch.setattr(jax, "default_backend", lambda: platform)
    traced = jax.make_jaxpr(lambda x: atrous(x, conv))(x)
    assert sum(e.primitive.name == "conv_general_dilated" for e in traced.eqns) == convs
    np.testing.assert_allclose(atrous(x, conv), expected, rtol=1e-5, atol=1e-5)
