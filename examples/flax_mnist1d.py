"""A 1-D CNN on MNIST-1D in Flax (nnx), trained with inna.optax: INNAprop or INNA, jitted.

    python examples/flax_mnist1d.py                     # INNAprop(1, 1), warmup + cosine
    python examples/flax_mnist1d.py --optimizer inna    # INNA(0.5, 0.5), gamma_0 / (k + 1)^(1/4)
    python examples/flax_mnist1d.py --smoke             # a few seconds on a CPU

MNIST-1D (Greydanus, 2020: 4,000 training and 1,000 test signals of length 40, 10 classes) is generated on the fly
by the mnist1d package (its make_dataset, with the default arguments; nothing is downloaded). No PyTorch needed:
pip install "inna[jax]" flax mnist1d.

nnx.Optimizer hands the parameters to the optax update, as INNAprop's weight decay needs. The settings are the
ones that did best on this task in inna's benchmark (docs/results: cnn-adamw.md, guidance.md): INNAprop with
alpha = beta = 1, lr 0.01 and weight decay 0.01; INNA with alpha = beta = 0.5 and a first step that is plain SGD.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax
from flax import nnx

import inna.optax


class CNN1D(nnx.Module):
    """Three strided 1-D convolutions (40 -> 20 -> 10 -> 5 samples, 32 channels), then a linear classifier."""

    def __init__(self, rngs: nnx.Rngs, channels: int = 32) -> None:
        self.conv1 = nnx.Conv(1, channels, kernel_size=5, strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, kernel_size=3, strides=2, rngs=rngs)
        self.conv3 = nnx.Conv(channels, channels, kernel_size=3, strides=2, rngs=rngs)
        self.out = nnx.Linear(5 * channels, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x[..., None]  # (batch, 40) -> (batch, 40, 1 channel)
        h = nnx.relu(self.conv3(nnx.relu(self.conv2(nnx.relu(self.conv1(h))))))
        return self.out(h.reshape(h.shape[0], -1))


def mnist1d(num_samples: int) -> tuple[np.ndarray, ...]:
    """MNIST-1D generated with the package's default arguments (80 % train); ``num_samples`` in all."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    data = make_dataset(args)
    return tuple(
        np.asarray(data[k], dtype=dtype)
        for k, dtype in (("x", np.float32), ("y", np.int32), ("x_test", np.float32), ("y_test", np.int32))
    )


def make_optimizer(name: str, steps: int) -> optax.GradientTransformation:
    if name == "innaprop":
        schedule = optax.warmup_cosine_decay_schedule(0.0, 0.01, steps // 20, steps, end_value=0.001)
        return inna.optax.innaprop(schedule, alpha=1.0, beta=1.0, weight_decay=0.01)
    return inna.optax.inna(inna.optax.power_decay(1.0, power=0.25), alpha=0.5, beta=0.5, initial_speed=1.0)


@nnx.jit
def train_step(model: CNN1D, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
    def loss_fn(model: CNN1D) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)  # in place: the model's parameters and the optimizer's state
    return loss


@nnx.jit
def evaluate(model: CNN1D, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (logits.argmax(-1) == y).mean()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--optimizer", choices=["innaprop", "inna"], default="innaprop", help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=40, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="initial weights and batch order (default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a few seconds: 1,000 signals, 2 epochs")
    args = p.parse_args()
    num_samples = 5000
    if args.smoke:
        num_samples, args.epochs = 1000, 2
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be at least 1")

    x_train, y_train, x_test, y_test = mnist1d(num_samples)
    steps_per_epoch = len(x_train) // args.batch_size
    model = CNN1D(nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, make_optimizer(args.optimizer, args.epochs * steps_per_epoch), wrt=nnx.Param)
    print(
        f"MNIST-1D: {len(x_train)} train / {len(x_test)} test signals; 1-D CNN on {jax.devices()[0].platform}; "
        f"{args.optimizer}, {args.epochs} epochs of {steps_per_epoch} steps"
    )

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        batches = np.split(order[: steps_per_epoch * args.batch_size], steps_per_epoch)
        losses = [train_step(model, optimizer, x_train[idx], y_train[idx]) for idx in batches]
        if epoch % max(1, args.epochs // 8) == 0 or epoch == args.epochs:
            test_loss, test_acc = evaluate(model, x_test, y_test)
            print(
                f"epoch {epoch}/{args.epochs}: train loss {np.mean(losses):.4f}, "
                f"test loss {float(test_loss):.4f}, test accuracy {100 * float(test_acc):.1f} %, "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )
    print(f"final: test accuracy {100 * float(test_acc):.2f} % after {int(optimizer.step[...])} steps")


if __name__ == "__main__":
    main()
