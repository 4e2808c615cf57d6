"""INNA or INNAprop as a Keras 3 optimizer, on scikit-learn's digits, on the TensorFlow, JAX or PyTorch backend.

    python examples/keras_digits.py --backend jax                  # INNA(0.5, 0.5), gamma_0 / (k + 1)^(1/4)
    KERAS_BACKEND=torch python examples/keras_digits.py --optimizer innaprop
    python examples/keras_digits.py --save runs/digits.keras       # save, then reload with the optimizer state
    python examples/keras_digits.py --smoke                        # a few seconds

The optimizers are used like any Keras optimizer: model.compile(optimizer=inna.keras.INNA(...)), then model.fit.
Keras reads KERAS_BACKEND once, when it is first imported: --backend sets it before that (without --backend the
variable, or Keras's own default, decides). A saved .keras file reloads with its optimizer and state once
inna.keras is imported. Needs pip install "inna[keras]" scikit-learn and the backend.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["tensorflow", "jax", "torch"], help="sets KERAS_BACKEND")
    p.add_argument("--optimizer", choices=["inna", "innaprop"], default="inna", help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=15, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--save", metavar="PATH.keras", help="save the trained model (optimizer included), then reload it")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a few seconds: 2 epochs")
    args = p.parse_args()
    if args.smoke:
        args.epochs = 2
    if args.save is not None and not args.save.endswith(".keras"):
        p.error(f"--save {args.save}: the file name must end in .keras")
    if args.backend is not None:
        os.environ["KERAS_BACKEND"] = args.backend

    import keras  # only now, so that KERAS_BACKEND is read as set above

    import inna.keras

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        (x / 16.0).astype("float32"), y, test_size=0.25, random_state=0, stratify=y
    )
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    if args.optimizer == "inna":  # beta = 0.5 >= gamma_0: stable from the first step; the slower decay q = 1/4
        optimizer = inna.keras.INNA(inna.keras.PowerDecay(0.5, power=0.25), alpha=0.5, beta=0.5)
    else:  # the AdamW recipe: warmup to the lr, cosine decay, decoupled weight decay
        lr = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=0.01, warmup_steps=steps // 20)
        optimizer = inna.keras.INNAprop(lr, alpha=1.0, beta=1.0, weight_decay=0.01)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    print(
        f"Keras {keras.__version__} on {keras.backend.backend()}: {type(optimizer).__name__}, "
        f"digits ({len(x_train)} train / {len(x_test)} test), MLP 64-128-10, {args.epochs} epochs"
    )
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"final: test accuracy {100 * accuracy:.2f} %, test loss {loss:.4f}")

    if args.save is not None:
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        model.save(args.save)
        reloaded = keras.saving.load_model(args.save)  # finds INNA / INNAprop: inna.keras registered them
        before, after = (
            [keras.ops.convert_to_numpy(v) for v in m.weights + m.optimizer.variables] for m in (model, reloaded)
        )
        same = len(before) == len(after) and all(np.array_equal(a, b) for a, b in zip(before, after))
        print(
            f"saved {args.save}; reloaded: {type(reloaded.optimizer).__name__} after "
            f"{int(reloaded.optimizer.iterations)} steps, same weights and optimizer state: {same}"
        )


if __name__ == "__main__":
    main()
