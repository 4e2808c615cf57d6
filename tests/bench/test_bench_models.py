"""The paper's NiN (exact parameter count and geometry) and the other networks."""

from __future__ import annotations

import pytest
import torch

from inna.bench.models import MODELS, NiN, build_model, count_parameters


def test_nin_parameter_count_matches_the_authors_keras_network() -> None:
    assert count_parameters(NiN(num_classes=10)) == 967_096
    assert count_parameters(NiN(num_classes=100)) == 994_456


def test_nin_geometry_and_outputs() -> None:
    model = NiN(10).eval()
    sizes = []
    for layer in model.features:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            layer.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    # 32 → 28 (5×5) → 13 (max 3/2) → 9 (5×5) → 4 (avg 3/2) → 2 (3×3) → 1 (avg 2/1)
    assert [s for i, s in enumerate(sizes) if i == 0 or s != sizes[i - 1]] == [28, 13, 9, 4, 2, 1]
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [192, 160, 96, 192, 192, 192, 192, 192, 10]
    assert [c.kernel_size[0] for c in convs] == [5, 1, 1, 5, 1, 1, 3, 1, 1]
    assert all(c.padding == (0, 0) for c in convs)
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.features) == 2
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs)  # Keras: zero biases


def test_nin_28x28_adapter_and_width() -> None:
    small = NiN(10, in_channels=1, input_size=28, width=0.25)
    assert small(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert count_parameters(small) < count_parameters(NiN(10, 1, 28)) / 10
    with pytest.raises(ValueError, match="input size"):
        NiN(10, 1, input_size=30)
    with pytest.raises(ValueError, match="width"):
        NiN(10, width=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_and_trains_a_step(name: str) -> None:
    shape = {"cnn1d": (40,), "mlp": (64,), "gpt": (16,)}.get(
        name, (1, 28, 28) if name in ("cnn", "nin") else (3, 32, 32)
    )
    torch.manual_seed(0)
    model = build_model(name, shape, 10, width=0.125)
    x, y = torch.rand(4, *shape), torch.arange(4)
    if name == "gpt":  # token windows in, next-token targets (B, T)
        x, y = torch.randint(0, 10, (4, 16)), torch.randint(0, 10, (4, 16))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_model_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="allowed values: nin"):
        build_model("lenet", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="square images"):
        build_model("nin", (40,), 10)
