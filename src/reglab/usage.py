"""A runnable usage snippet for every registered name: ``reglab info NAME`` prints it.

``usage_snippet(name)`` returns self-contained Python (a tiny model and batch
included) showing how that *form* is used: a penalty is attached or called
and added to the loss; a target transform replaces the labels; a transform
is applied to inputs; a module is inserted into the model; an optimizer
wraps the base optimizer; a posthoc transform is fitted on embeddings; a
pruner is attached and stepped; an operation is called on the model between
rounds; a reparametrization is applied to the model once. A test executes
every snippet, so none drifts from the API.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["usage_snippet", "FORM_USAGE"]

#: One line per form: how it is used, for error messages and ``reglab info``.
FORM_USAGE = {
    "penalty": "add it to the loss: reglab.attach(model, [reg]) then loss + regs.penalty(), or loss + reg(tensors)",
    "target": "it transforms the targets: train on loss(logits, reg(labels, ...)) instead of the hard labels",
    "transform": "apply it to a batch or inside forward(): x = reg(x) in training mode",
    "module": "insert it into the model (it is an nn.Module) and use its output or .loss()",
    "optimizer": "it wraps the optimizer: opt = reglab.create(name, params=model.parameters(), lr=...) and opt.step()",
    "posthoc": "fit it on embeddings after training: reg.fit(train_embeddings).transform(embeddings)",
    "pruning": "attach it and call regs.step(optimizer) after each optimizer step: it masks weights on a schedule",
    "operation": "call it on the model between training rounds: reg(model)",
    "reparametrization": "apply it to the model once before training: reg(model)",
}

_HEAD = """import torch
from torch import nn
import reglab

torch.manual_seed(0)
"""

_WEIGHT = _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
regs = reglab.attach(model, [reglab.create({name!r}{args})])  # default selection: weights, not biases/norms
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
loss = nn.functional.cross_entropy(model(x), y) + regs.penalty()
loss.backward(); opt.step(); regs.step(opt)
print(regs.summary()); print({{k: float(v) for k, v in regs.last.items()}})
"""

_ACTIVATIONS = _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
reg = reglab.create({name!r}{args})
regs = reglab.attach(model, [reg.on(activations="1")])  # the ReLU's output (model[1])
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
{views}loss = {task} + regs.penalty()
loss.backward(); opt.step(); regs.step(opt)
print({{k: float(v) for k, v in regs.last.items()}})
"""

_OUTPUT = _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
reg = reglab.create({name!r}{args})
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
{body}
loss.backward(); opt.step(); reg.step()  # reg.step() advances its schedule (regs.step does it when attached)
print(float(loss))
"""

#: the body of `_OUTPUT` (defines `loss`) for penalties on outputs and other non-embedding inputs
_CALLS = {
    "entropy": "logits = model(x)\nloss = nn.functional.cross_entropy(logits, y) + reg(logits)",
    "confidence_penalty": "logits = model(x)\nloss = nn.functional.cross_entropy(logits, y) + reg(logits)",
    "consistency": "logits_a, logits_b = model(x + 0.1 * torch.randn_like(x)), model(x + 0.1 * torch.randn_like(x))\n"
    "loss = nn.functional.cross_entropy(logits_a, y) + reg(logits_a, logits_b)",
    "elr": "index = torch.arange(32)  # each sample's position in the training set\nlogits = model(x)\n"
    "loss = nn.functional.cross_entropy(logits, y) + reg(logits, index)",
    "jacobian": "x.requires_grad_(True)\nlogits = model(x)\nloss = nn.functional.cross_entropy(logits, y) + reg(x, logits)",
    "gradient_norm": "task = nn.functional.cross_entropy(model(x), y)\n"
    "loss = task + reg(task, list(model.parameters()))  # λ·‖∇θ L‖ by double backprop",
    "droppos": "pred = torch.randn(2, 5, 9, requires_grad=True)  # (batch, visible tokens, positions): logits\n"
    "ids_keep = torch.stack([torch.randperm(9)[:5] for _ in range(2)])  # each visible token's true position\n"
    "mask_pos = torch.ones(2, 5)  # 1 where the token's position embedding was dropped (to predict)\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(pred, ids_keep, mask_pos)",
    "seqpe": "b, k, d = 4, 5, 6  # position encodings: b pivots, k candidates each, d dims\n"
    "pivot, candidates = torch.randn(b, d, requires_grad=True), torch.randn(b * k, d)\n"
    "labels = torch.randint(0, k, (b,))  # the candidate nearest each pivot\n"
    "main_pe, main_idx = torch.randn(10, d), torch.stack([torch.randperm(10)[:4] for _ in range(2)])\n"
    "trans_pe = torch.randn(8, d)  # the encodings of the transferred (out-of-distribution) positions\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(pivot, candidates, labels, main_pe, main_idx, trans_pe)",
    "wae_mmd": "z = model[0](x)  # a batch of latent codes (n, d_z)\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(z)  # λ·MMD(q_Z, N(0, I)); a fresh prior sample per call",
    "energy_confusion": "features = model[:2](x)  # backbone features\n"
    "z = model[2](features.detach())  # the official code confuses only the embedding layer (propagate_down: 0)\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(z, y)  # + λ·log E over random pairs",
    "jacobian_nuclear_norm": "h, g = model[:2], model[2:]  # f = g∘h; here f is the whole model\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(x, h, g)  # ≈ η·½(‖J_h‖²_F + ‖J_g‖²_F) ≥ η·‖J_f‖_*",
    "path_length": "z = torch.randn(32, 8, requires_grad=True)  # a latent input (the sampled noise in Smooth Diffusion)\n"
    "out = model(z)  # the map whose local variation should be constant\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(out, z)  # λ·mean (‖J^T y‖ − a)², a a running mean (buffer)",
    "ridg": "features = model[:2](x)  # the classifier's input\n"
    "loss = nn.functional.cross_entropy(model[2](features), y) + reg(features, y, model[2].weight)  # rationale bank in a buffer",
    "enveloping": "z, t = model[:2](x), torch.rand(32)  # representations and a continuous target\n"
    "bins = (t * 8).long()  # 8 target bins, in order\n"
    "trace = torch.stack([z[bins == b].mean(0) for b in bins.unique()])  # label-ordered centroids\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(trace)  # the trace should cover the sphere",
    "homogeneity": "z, t = model[:2](x), torch.rand(32)  # representations and a continuous target\n"
    "bins = (t * 8).long()\n"
    "trace = torch.stack([z[bins == b].mean(0) for b in bins.unique()])  # label-ordered centroids\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(trace)  # evenly spaced, smooth trace",
    "glocal_alignment": "projector = nn.Linear(16, 16)\n"
    "z_masked = model[:2](x * (torch.rand_like(x) > 0.5))  # latents of the masked input\n"
    "with torch.no_grad():\n    z_complete = model[:2](x)  # latents of the complete input\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(projector(z_masked), z_complete)",
    "multigrained_uncertainty": "query, target = model[:2](x), model[:2](x + 0.1 * torch.randn_like(x))  # matched pairs\n"
    "loss = reg(query, target, epoch=0)  # the whole matching loss: γ·aleatoric(perturbed targets) + (1 − γ)·in-batch CE",
    "mutual_feature_regularization": "saes = [nn.Linear(8, 16) for _ in range(2)]  # the encoders of two parallel SAEs\n"
    "recon = sum(((e(x).relu() @ e.weight) - x).pow(2).mean() for e in saes)\n"
    "loss = recon + reg(*[e.weight.t() for e in saes])  # features = columns; Hungarian-matched cosine",
    "gradient_hinge": "pts = torch.randn(32, 8, requires_grad=True)  # points near the boundary (OReX: near the slices' edges)\n"
    "field = model(pts)[:, 0]  # the field's value at those points\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(pts, field)  # λ·mean max(‖∇f‖ − α, 0)",
    "matrix_subspace_projection": "M = nn.Parameter(nn.init.xavier_normal_(torch.empty(4, 16)))  # attributes × code size\n"
    "opt.add_param_group({'params': [M]})  # M is learned with the model\n"
    "z, attrs = model[:2](x), nn.functional.one_hot(y, 4).double().float()\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(z, attrs, M)  # ‖zMᵀ − y‖² + ‖yM − z‖²",
    "attention_entropy": "q = k = model[0](x).reshape(32, 2, 8).transpose(0, 1)  # (heads, tokens, dim)\n"
    "attn = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)[None]  # (batch, heads, queries, keys)\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(attn)",
}

_SPECIAL = {
    "label_smoothing": _HEAD + """model = nn.Linear(8, 4)
smooth = reglab.create("label_smoothing")
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
targets = smooth(y, num_classes=4)  # (1 - ε)·onehot + ε/C
loss = reglab.functional.soft_cross_entropy(model(x), targets)
loss.backward()
""",
    "repa": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
frozen = nn.Linear(8, 12).requires_grad_(False)  # a pretrained encoder (DINOv2 in the paper)
projector = nn.Sequential(nn.Linear(16, 32), nn.SiLU(), nn.Linear(32, 12))  # trainable, discarded after training
repa = reglab.create("repa")  # λ = 0.5
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
hidden = model[:2](x)  # an early/middle layer's hidden states, (B, D) or (B, N, D)
loss = nn.functional.cross_entropy(model[2](hidden), y) + repa(projector(hidden), frozen(x))
loss.backward()
""",
    "structure": _HEAD + """frozen_img, frozen_txt = torch.randn(64, 12), torch.randn(64, 10)  # frozen unimodal features of 64 pairs
proj_img, proj_txt = nn.Linear(12, 8), nn.Linear(10, 8)  # the trainable alignment layers
structure = reglab.create("structure")  # λ = 10, τ = 0.05, one level
zi = nn.functional.normalize(proj_img(frozen_img), dim=1)
zt = nn.functional.normalize(proj_txt(frozen_txt), dim=1)
logits = zi @ zt.T / 0.05
clip = (nn.functional.cross_entropy(logits, torch.arange(64)) + nn.functional.cross_entropy(logits.T, torch.arange(64))) / 2
loss = clip + 0.5 * (structure(zi, frozen_img) + structure(zt, frozen_txt))  # keep each space's neighbourhoods
loss.backward()
""",
    "frozen_agreement": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
frozen = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
frozen.load_state_dict(model.state_dict()); frozen.requires_grad_(False)  # the pretrained model, kept frozen
agree = reglab.create("frozen_agreement")  # λ_f = 10, weight 1 (PromptSRC)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
features, logits = model[:2](x), model(x)
with torch.no_grad():
    frozen_features, frozen_logits = frozen[:2](x), frozen(x)
loss = nn.functional.cross_entropy(logits, y) + agree(features, frozen_features, logits, frozen_logits)
loss.backward()
""",
    "pskd": _HEAD + """model = nn.Linear(8, 4)
pskd = reglab.create("pskd", num_samples=32, num_classes=4, total_epochs=10)
x, y, index = torch.randn(32, 8), torch.randint(0, 4, (32,)), torch.arange(32)
logits = model(x)
targets = pskd(y, index, logits)  # softened by the model's own past predictions
loss = reglab.functional.soft_cross_entropy(logits, targets)
loss.backward()
""",
    "cutout": _HEAD + """images = torch.rand(8, 1, 28, 28)
augmented = reglab.create("cutout", size=8)(images)  # in training: zero a random square per image
""",
    "gaussian_noise": _HEAD + """noise = reglab.create("gaussian_noise", sigma=0.1)
x = torch.randn(32, 8)
noisy = noise(x)  # x + N(0, σ²) in training; identity with noise.eval()
""",
    "drop_path": _HEAD + """class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.f, self.drop = nn.Linear(8, 8), reglab.create("drop_path", p=0.1)

    def forward(self, x):
        return x + self.drop(self.f(x))  # the residual branch is dropped per sample in training

out = Block()(torch.randn(32, 8))
""",
    "scheduled_drop_path": _HEAD + """drop = reglab.create("scheduled_drop_path", total_steps=1000, p_final=0.3)
h = torch.randn(32, 8)
out = h + drop(h)  # the drop rate ramps from 0 to p_final over total_steps
drop.step()  # once per optimizer step (regs.step() does it when attached)
""",
    "multi_sample_dropout": _HEAD + """head = nn.Linear(16, 4)
msd = reglab.create("multi_sample_dropout", module=head, num_samples=8, p=0.5)
z, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
loss = msd.loss(z, y)  # mean over 8 dropout masks sharing the head
loss.backward()
""",
    "logit_clip": _HEAD + """model = nn.Sequential(nn.Linear(8, 4), reglab.create("logit_clip", delta=1.0))  # clamps ‖logits‖
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
nn.functional.cross_entropy(model(x), y).backward()
""",
    "flops_idf": _HEAD + """flops_idf = reglab.create("flops_idf")
query_tokens = torch.rand(4, 30)  # sparse query term weights (batch, vocab)
docs = torch.rand(4, 30, requires_grad=True)  # sparse document term weights
idf = torch.rand(30) + 0.5
terms = flops_idf(query_tokens, docs, idf)  # named terms: the retrieval scores and the FLOPS regularizer
print(terms._fields)
""",
    "sam": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
sam = reglab.create("sam", params=model.parameters(), base_optimizer=torch.optim.SGD, lr=0.1, rho=0.05)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
nn.functional.cross_entropy(model(x), y).backward()
sam.first_step(zero_grad=True)   # w <- w + ε (the worst nearby point)
nn.functional.cross_entropy(model(x), y).backward()
sam.second_step(zero_grad=True)  # back to w, then the base optimizer's step
""",
    "amp_perturbation": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
amp = reglab.create("amp_perturbation", params=model.parameters(), base_optimizer=torch.optim.SGD, lr=0.1)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))

def closure():  # forward + backward, returns the loss (called K + 1 times per step)
    amp.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss

amp.step(closure)
""",
    "magnitude_pruning": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
pruner = reglab.create("magnitude_pruning", final_sparsity=0.5, begin_step=0, end_step=10, frequency=1)
regs = reglab.attach(model, pruner.on(modules=nn.Linear))
for step in range(12):
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    regs.step(opt)  # masks for this step's sparsity
print(float((model[0].weight == 0).float().mean()))
""",
    "shrink_perturb": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
# ... train on the first round of data, then, before the next round:
reglab.create("shrink_perturb", shrink=0.4, perturb=0.1)(model)  # θ <- 0.4·θ + 0.1·θ_fresh
opt = torch.optim.SGD(model.parameters(), lr=0.1)  # a fresh optimizer for the new round
""",
    "sigma_reparam": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
reglab.create("sigma_reparam")(model)  # every Linear weight becomes (γ/σ(W))·W, γ learnable
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # build the optimizer after: γ is a new parameter
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
nn.functional.cross_entropy(model(x), y).backward(); opt.step()
""",
}

_POSTHOC = """import numpy as np
import reglab

rng = np.random.default_rng(0)
train = rng.normal(size=(500, 32)).astype(np.float32) @ rng.normal(size=(32, 32)).astype(np.float32)
queries = rng.normal(size=(10, 32)).astype(np.float32)
transform = reglab.create({name!r}{args}).fit(train{fit})  # fit on embeddings after training
out = transform.transform(queries)  # numpy in, numpy out (torch in, torch out)
"""


#: constructor arguments for the snippets' batch of 32 samples and 4 classes
_ARGS = {"elr": {"num_samples": 32, "num_classes": 4}}


def _args(cls: Any) -> str:
    example = _ARGS.get(cls.name) or dict(getattr(cls, "example_args", {}) or {})
    return "".join(f", {k}={v!r}" for k, v in example.items())


def usage_snippet(name: str) -> str:
    """Runnable Python showing how to use the registered ``name`` (see the module docstring)."""
    from reglab.core.registry import get

    cls = get(name)
    form = getattr(cls, "form", "penalty")
    if name in _SPECIAL:
        return _SPECIAL[name]
    if form == "posthoc":
        if name == "embedding_pipeline":
            return _POSTHOC.replace("reglab.create({name!r}{args})", "reglab.embeddings.Pipeline([reglab.create('center'), reglab.create('whitening', k=16)])").format(fit="")
        fit = ", frequencies=np.arange(1, 501)" if "frequencies" in inspect.signature(cls.fit).parameters else ""
        return _POSTHOC.format(name=name, args=_args(cls), fit=fit)
    if form != "penalty":
        raise KeyError(f"no usage snippet for {name!r} (form {form!r})")
    from reglab.core.regularizer import WeightRegularizer

    if issubclass(cls, WeightRegularizer):
        return _WEIGHT.format(name=name, args=_args(cls))
    if name in _CALLS:
        return _OUTPUT.format(name=name, args=_args(cls), body=_CALLS[name])
    embedding_batches = getattr(cls, "takes_embedding_batches", cls.kind == "representation")
    if cls.kind == "representation" and embedding_batches and cls.num_inputs in (1, 2):
        if cls.num_inputs == 2:  # two views through the model: the hook captures both, penalty() pairs them
            views = "x1, x2 = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)\n"
            task = "nn.functional.cross_entropy(model(x1), y) + nn.functional.cross_entropy(model(x2), y)"
        else:
            views, task = "", "nn.functional.cross_entropy(model(x), y)"
        return _ACTIVATIONS.format(name=name, args=_args(cls), views=views, task=task)
    raise KeyError(f"no usage snippet for {name!r}: see reglab.info({name!r}) and its docstring")
