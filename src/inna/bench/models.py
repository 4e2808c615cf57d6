"""Networks for the benchmark: the paper's modified Network in Network, VGG-11 and ResNet-18 (CIFAR variants),
and the small CNN / 1-D CNN / MLP the CPU tasks use.

All models return logits; the loss is the mean cross-entropy (``torch.nn.functional.cross_entropy``), which is
the paper's Keras ``softmax`` output + ``sparse_categorical_crossentropy``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["CNN1D", "MLP", "MODELS", "VGG11", "NiN", "ResNet18", "SmallCNN", "build_model", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _check_width(width: float) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ValueError(f"Invalid width value: {width} (must be a finite number > 0)")
    return float(width)


def _glorot_zero_(module: nn.Module) -> None:
    """Keras defaults: glorot-uniform kernels, zero biases (used by the NiN, as in the authors' Keras code)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PadTo32(nn.Module):
    """Input adapter for 28×28 images: zero-pads 2 pixels on each side to 32×32 (as LeNet-5 did for MNIST), so that
    the 32×32 networks keep their exact geometry (for the NiN: 32 → 28 → 13 → 9 → 4 → 2 → 1)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        if size not in (28, 32):
            raise ValueError(f"Invalid input size: {size} (the 32×32 networks accept 32, or 28 via zero padding)")
        self.pad = (32 - size) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 32 - 2 * self.pad or x.shape[-2] != 32 - 2 * self.pad:
            raise ValueError(f"expected {32 - 2 * self.pad}×{32 - 2 * self.pad} images, got {tuple(x.shape[-2:])}")
        return nn.functional.pad(x, (self.pad,) * 4) if self.pad else x


class NiN(nn.Module):
    """The paper's "slightly modified" Network in Network (Lin et al. 2014), as in the authors' Keras code.

    Three mlpconv blocks with 'valid' padding and ReLU everywhere::

        conv 192@5×5 → conv 160@1×1 → conv 96@1×1 → maxpool 3 /2 → dropout 0.5
        conv 192@5×5 → conv 192@1×1 → conv 192@1×1 → avgpool 3 /2 → dropout 0.5
        conv 192@3×3 → conv 192@1×1 → conv C@1×1   → avgpool 2 /1 → flatten
        dense C (softmax)    # the layer added by the authors ("not in the original paper")

    Glorot-uniform weights and zero biases (Keras defaults). 967,096 parameters for C = 10 on 32×32×3 images,
    994,456 for C = 100.

    Args:
        num_classes: C.
        in_channels: 3 for CIFAR, 1 for (Fashion-)MNIST.
        input_size: 32, or 28: 28×28 images are zero-padded to 32×32 (:class:`PadTo32`), since the exact stack
            collapses on 28×28 inputs (the last average pooling would get a 1×1 map).
        width: multiplies the hidden channel counts (192, 160, 96), not C; ``width=0.25`` is a CPU-sized NiN.
        dropout: the dropout rate after the first two blocks (0.5 in the paper).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        w = _check_width(width)
        c192, c160, c96 = _scaled(192, w), _scaled(160, w), _scaled(96, w)
        relu = nn.ReLU
        self.adapter = PadTo32(input_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c192, 5), relu(),
            nn.Conv2d(c192, c160, 1), relu(),
            nn.Conv2d(c160, c96, 1), relu(),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(dropout),
            nn.Conv2d(c96, c192, 5), relu(),
            nn.Conv2d(c192, c192, 1), relu(),
            nn.Conv2d(c192, c192, 1), relu(),
            nn.AvgPool2d(3, stride=2),
            nn.Dropout(dropout),
            nn.Conv2d(c192, c192, 3), relu(),
            nn.Conv2d(c192, c192, 1), relu(),
            nn.Conv2d(c192, num_classes, 1), relu(),
            nn.AvgPool2d(2, stride=1),
            nn.Flatten(),
        )  # fmt: skip
        self.classifier = nn.Linear(num_classes, num_classes)
        _glorot_zero_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.adapter(x)))


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """VGG-11 with batch norm, CIFAR variant (3×3 convs with padding 1, five 2×2 max-pools, one linear layer on the
    final 1×1×512 map). ``width`` multiplies every channel count; 28×28 inputs are zero-padded to 32×32."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0) -> None:
        super().__init__()
        w = _check_width(width)
        layers: list[nn.Module] = []
        c = in_channels
        for v in _VGG11:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = _scaled(int(v), w)
                layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                c = out
        self.adapter = PadTo32(input_size)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.adapter(x)))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant: a 3×3 stride-1 stem without max-pool, four stages of two basic blocks
    (64, 128, 256, 512 channels × ``width``), global average pooling, one linear layer."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0) -> None:
        super().__init__()
        w = _check_width(width)
        widths = [_scaled(c, w) for c in (64, 128, 256, 512)]
        self.adapter = PadTo32(input_size)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c = widths[0]
        for i, out in enumerate(widths):
            for j in range(2):
                blocks.append(_BasicBlock(c, out, 2 if (i > 0 and j == 0) else 1))
                c = out
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(self.adapter(x))))


class SmallCNN(nn.Module):
    """A small 2-D CNN for 28×28 (or other) images: two conv 3×3 (16, 32 channels × ``width``) + ReLU + 2×2
    max-pool, then a linear layer. ~20k parameters at width 1 on 28×28×1."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, width: float = 1.0) -> None:
        super().__init__()
        w = _check_width(width)
        c1, c2 = _scaled(16, w), _scaled(32, w)
        side = input_size // 2 // 2
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * side * side, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN1D(nn.Module):
    """A 1-D CNN for MNIST-1D (signals of length L): three conv (kernel 5, stride 2, 32 channels × ``width``) +
    ReLU, then a linear layer; inputs ``(N, L)`` or ``(N, 1, L)``."""

    def __init__(self, num_classes: int = 10, length: int = 40, width: float = 1.0) -> None:
        super().__init__()
        c = _scaled(32, _check_width(width))
        size = length
        for _ in range(3):
            size = (size + 2 * 2 - 5) // 2 + 1
        self.net = nn.Sequential(
            nn.Conv1d(1, c, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(c, c, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(c, c, 5, stride=2, padding=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(c * size, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], 1, -1))


class MLP(nn.Module):
    """A ReLU multilayer perceptron on flattened inputs; ``hidden`` widths are multiplied by ``width``."""

    def __init__(self, in_features: int, num_classes: int = 10, hidden: Sequence[int] = (128, 128), width: float = 1.0):
        super().__init__()
        w = _check_width(width)
        layers: list[nn.Module] = [nn.Flatten()]
        c = in_features
        for h in hidden:
            layers += [nn.Linear(c, _scaled(h, w)), nn.ReLU()]
            c = _scaled(h, w)
        layers.append(nn.Linear(c, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _image_args(input_shape: tuple[int, ...], name: str) -> tuple[int, int]:
    if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
        raise ValueError(f"model {name!r} needs square images (C, H, W); got inputs of shape {input_shape}")
    return input_shape[0], input_shape[1]


def _nin(shape: tuple[int, ...], c: int, width: float) -> nn.Module:
    ch, size = _image_args(shape, "nin")
    return NiN(c, ch, size, width)


def _vgg(shape: tuple[int, ...], c: int, width: float) -> nn.Module:
    ch, size = _image_args(shape, "vgg11")
    return VGG11(c, ch, size, width)


def _resnet(shape: tuple[int, ...], c: int, width: float) -> nn.Module:
    ch, size = _image_args(shape, "resnet18")
    return ResNet18(c, ch, size, width)


def _small_cnn(shape: tuple[int, ...], c: int, width: float) -> nn.Module:
    ch, size = _image_args(shape, "cnn")
    return SmallCNN(c, ch, size, width)


def _cnn1d(shape: tuple[int, ...], c: int, width: float) -> nn.Module:
    if len(shape) not in (1, 2):
        raise ValueError(f"model 'cnn1d' needs 1-D signals (L,) or (1, L); got inputs of shape {shape}")
    return CNN1D(c, shape[-1], width)


def _mlp(shape: tuple[int, ...], c: int, width: float) -> nn.Module:
    return MLP(math.prod(shape), c, (128, 128), width)


# ------------------------------------------------------------------ the language-model task's network (TinyGPT)

#: TinyGPT's shape at width 1 for the LM task: embedding width, blocks, heads (≈ 110k parameters on a
#: 100-character vocabulary with a 64-character context). ``width`` scales the embedding width.
GPT_DIM, GPT_LAYERS, GPT_HEADS = 64, 2, 4


def _gpt(shape: tuple[int, ...], c: int, width: float) -> nn.Module:
    from .transformer import TinyGPT

    if len(shape) != 1:
        raise ValueError(f"model 'gpt' needs token windows (T,); got inputs of shape {shape}")
    dim = GPT_HEADS * max(1, round(GPT_DIM * _check_width(width) / GPT_HEADS))  # a multiple of the head count
    return TinyGPT(c, shape[0], dim=dim, layers=GPT_LAYERS, heads=GPT_HEADS)


#: name → builder(input_shape, num_classes, width)
MODELS: dict[str, Callable[[tuple[int, ...], int, float], nn.Module]] = {
    "nin": _nin,
    "vgg11": _vgg,
    "resnet18": _resnet,
    "cnn": _small_cnn,
    "cnn1d": _cnn1d,
    "mlp": _mlp,
    "gpt": _gpt,
}


def build_model(name: str, input_shape: Sequence[int], num_classes: int, width: float = 1.0) -> nn.Module:
    """Build a registered model (see :data:`MODELS`) for inputs of ``input_shape`` (without the batch dimension)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; allowed values: {', '.join(MODELS)}")
    return MODELS[name](tuple(int(s) for s in input_shape), int(num_classes), width)
