"""The Hugging Face Trainer integration, end to end with the real library on CPU."""

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import reglab  # noqa: E402
from reglab.integrations.transformers import RegularizedTrainer  # noqa: E402


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.dense = nn.Linear(6, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x, labels=None):
        logits = self.out(torch.relu(self.dense(x)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class Data(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)

    def __len__(self):
        return 32

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def _args(tmp_path):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=8, learning_rate=0.1, optim="sgd",
        lr_scheduler_type="constant", report_to=[], use_cpu=True, logging_steps=1, save_strategy="no",
        dataloader_num_workers=0, seed=0, data_seed=0,
    )  # fmt: skip


def test_regularized_trainer_adds_the_penalty_runs_prox_and_logs(tmp_path):
    model = Tiny()
    trainer = RegularizedTrainer(
        model=model, args=_args(tmp_path), train_dataset=Data(),
        regularizers=[reglab.L2(1e-2), reglab.create("group_lasso", weight=2.0).on(params="dense.weight", mode="prox")],
    )  # fmt: skip
    trainer.train()
    assert (model.dense.weight.detach().norm(dim=1) == 0).sum() >= 1  # the proximal step ran after optimizer steps
    logged = [h for h in trainer.state.log_history if "reg/l2" in h]
    assert logged and all(h["reg/l2"] > 0 for h in logged)
    # the loss it trained on includes the penalty: a stronger L2 ends with smaller weights
    strong = Tiny()
    RegularizedTrainer(model=strong, args=_args(tmp_path), train_dataset=Data(), regularizers=[reglab.L2(1.0)]).train()
    plain = Tiny()
    RegularizedTrainer(model=plain, args=_args(tmp_path), train_dataset=Data(), regularizers=[reglab.L2(1e-6)]).train()
    assert strong.out.weight.norm() < plain.out.weight.norm()


@pytest.mark.parametrize("accumulate", [1, 2])
def test_grad_mode_equals_penalty_mode(tmp_path, accumulate):
    def run(mode):
        model = Tiny()
        regs = [
            reglab.L2(1e-1).on(mode=mode),
            reglab.create("soft_orthogonality", weight=1e-2).on(params="dense.weight", mode=mode, every=2),
        ]
        args = _args(tmp_path)
        args.gradient_accumulation_steps = accumulate
        args.max_grad_norm = 0.5  # clipping active: grad mode must add before it, as the penalty's gradient is
        trainer = RegularizedTrainer(model=model, args=args, train_dataset=Data(), regularizers=regs)
        trainer.train()
        return model, trainer

    a, _ = run("penalty")
    b, tb = run("grad")
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    assert tb.regs.regularizers[0].step_count == 8
    assert any("reg/l2" in h for h in tb.state.log_history)
