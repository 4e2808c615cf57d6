"""INNA inside PyTorch Lightning, Hugging Face transformers.Trainer and accelerate: train, checkpoint, resume.

Each test trains straight through, then again with a checkpoint in the middle that fresh objects load, and
requires the resumed run to end on exactly the same weights. Tiny models are built from configs: nothing is
downloaded. The packages come from the ``integrations`` extra (installed by ``make test``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inna import INNA, PowerDecayLR

pytestmark = pytest.mark.slow

HP = dict(lr=0.05, alpha=0.5, beta=0.1, initial_speed=1.0)


def toy_data(n=64, d=6, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


# ------------------------------------------------------------------------------------------- Lightning


def test_lightning_configure_optimizers_checkpoint_and_resume(tmp_path):
    L = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            opt = INNA(self.parameters(), **HP)
            # the paper's decay, stepped every iteration
            return {"optimizer": opt, "lr_scheduler": {"scheduler": PowerDecayLR(opt), "interval": "step"}}

    data = DataLoader(TensorDataset(*toy_data()), batch_size=16, shuffle=False)  # 4 steps per epoch

    def trainer(epochs):
        return L.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp_path,
        )

    straight = Module()
    trainer(4).fit(straight, data)

    first = Module()
    t = trainer(2)
    t.fit(first, data)
    ckpt = tmp_path / "half.ckpt"
    t.save_checkpoint(ckpt)
    resumed = Module()
    torch.nn.init.zeros_(resumed.net[0].weight)  # the checkpoint must supply everything
    t2 = trainer(4)
    t2.fit(resumed, data, ckpt_path=ckpt)

    assert t2.global_step == 16
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    opt = t2.optimizers[0]
    assert isinstance(opt, INNA) and opt.param_groups[0]["lr"] == pytest.approx(0.05 / 17**0.5)


# ----------------------------------------------------------------------------- Hugging Face Trainer


def test_transformers_trainer_with_inna_and_scheduler_resumes_exactly(tmp_path):
    transformers = pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40, (48, 8), generator=gen)
    labels = torch.randint(0, 3, (48,), generator=gen)
    dataset = [{"input_ids": i, "labels": y} for i, y in zip(ids, labels)]

    def run(out, max_steps, resume=None):
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
        opt = INNA(model.parameters(), **HP)
        sched = PowerDecayLR(opt)
        args = TrainingArguments(
            output_dir=str(out),
            max_steps=max_steps,
            per_device_train_batch_size=8,
            save_strategy="steps",
            save_steps=4,
            report_to=[],
            use_cpu=True,
            seed=0,
            logging_steps=100,
            disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset, optimizers=(opt, sched))
        trainer.train(resume_from_checkpoint=resume)
        return model, opt

    straight, _ = run(tmp_path / "a", 8)
    run(tmp_path / "b", 4)
    resumed, opt = run(tmp_path / "c", 8, resume=str(tmp_path / "b" / "checkpoint-4"))
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert isinstance(opt, INNA) and opt.param_groups[0]["lr"] == pytest.approx(0.05 / 9**0.5)
    del transformers


# ------------------------------------------------------------------------------------------- accelerate


def test_accelerate_prepare_save_state_load_state(tmp_path):
    accelerate = pytest.importorskip("accelerate")
    x, y = toy_data()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)] * 3

    def make():
        accelerator = accelerate.Accelerator(cpu=True)
        model = mlp()
        opt = INNA(model.parameters(), **HP)
        sched = PowerDecayLR(opt)
        model, opt, sched = accelerator.prepare(model, opt, sched)
        return accelerator, model, opt, sched

    def train(accelerator, model, opt, sched, steps):
        for xb, yb in steps:
            opt.zero_grad()
            accelerator.backward(nn.functional.cross_entropy(model(xb), yb))
            opt.step()
            sched.step()

    acc, model, opt, sched = make()
    train(acc, model, opt, sched, batches)
    straight = [p.detach().clone() for p in model.parameters()]

    acc, model, opt, sched = make()
    train(acc, model, opt, sched, batches[:6])
    acc.save_state(str(tmp_path / "state"))

    acc, model, opt, sched = make()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    acc.load_state(str(tmp_path / "state"))
    train(acc, model, opt, sched, batches[6:])
    for p, q in zip(model.parameters(), straight):
        assert torch.equal(p.detach(), q)
