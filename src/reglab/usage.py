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
    "attention_entropy": "q = k = model[0](x).reshape(32, 2, 8).transpose(0, 1)  # (heads, tokens, dim)\n"
    "attn = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)[None]  # (batch, heads, queries, keys)\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(attn)",
    "tcm": "z = model(x)  # embeddings of a labelled batch\n"
    "loss = nn.functional.cross_entropy(z, y) + reg(z, y)  # base metric loss + TCM on the hard pairs",
    "cma": "text_emb = nn.Embedding(4, 4)  # a text embedding per class prompt (CLIP's text tower)\n"
    "img, txt = model(x), text_emb(y)  # row i: the image and the text of its class\n"
    "loss = nn.functional.cross_entropy(img, y) + reg(img, txt)  # CLIP loss + λ·CMA",
    "kl_bottleneck": "mu, logvar = model(x), nn.functional.softplus(model(x)).log()  # an encoder's mean and log-variance\n"
    "z = reglab.functional.gaussian_reparameterize(mu, logvar, training=model.training)\n"
    "loss = nn.functional.cross_entropy(z, y) + reg(mu, logvar)",
    "siren": "policy_logits = torch.randn(4, 12, 50, requires_grad=True)  # (responses, tokens, vocab) of a policy\n"
    "response_mask = torch.ones(4, 12, dtype=torch.bool)  # the response tokens\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(policy_logits, response_mask)  # + the policy loss",
    "lol": "xs = [x * (torch.rand_like(x) < keep) for keep in (0.25, 0.5, 1.0)]  # nested views: more pixels seen\n"
    "per_view = torch.stack([nn.functional.cross_entropy(model(v), y, reduction='none') for v in xs], dim=1)\n"
    "loss = per_view.mean() + reg(per_view)  # columns ordered by increasing information",
    "pego": "w0 = model[0].weight.detach()  # a frozen pretrained weight (out, in)\n"
    "loras = [(torch.randn(16, 2, requires_grad=True), torch.randn(2, 8, requires_grad=True)) for _ in range(3)]\n"
    "deltas = torch.stack([b @ a for b, a in loras])  # ΔW_i = B_i·A_i\n"
    "loss = nn.functional.cross_entropy(model(x), y) + reg(deltas, w0)",
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
    "elle": "loss = nn.functional.cross_entropy(model(x), y) + reg(x, y, model)  # λ·local-linearity error in B_ε(x)",
    "arow": "x_adv = x + 0.03 * torch.randn_like(x).sign()  # your attack here (the paper: PGD-10 on the KL)\n"
    "logits, adv_logits = model(x), model(x_adv)\n"
    "targets = reglab.create(\"label_smoothing\", epsilon=0.2)(y, 4)  # the paper's supervised term: LS-CE, ε = 0.2\n"
    "loss = reglab.functional.soft_cross_entropy(logits, targets) + reg(logits, adv_logits, y)",
    "hessian_alignment": "env_losses = torch.stack([nn.functional.cross_entropy(model(x[e::2]), y[e::2]) for e in range(2)])"
    "  # one mean loss per training environment\n"
    "loss = env_losses.mean() + reg(env_losses, model[2])  # align the head's g_e and H_e g_e",
}

_SPECIAL = {
    "label_smoothing": _HEAD + """model = nn.Linear(8, 4)
smooth = reglab.create("label_smoothing")
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
targets = smooth(y, num_classes=4)  # (1 - ε)·onehot + ε/C
loss = reglab.functional.soft_cross_entropy(model(x), targets)
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
    "topk": _HEAD + """encoder = nn.Sequential(nn.Linear(64, 256), reglab.create("topk", k=16))  # exactly ≤ 16 active latents
decoder = nn.Linear(256, 64)
x = torch.randn(32, 64)
nn.functional.mse_loss(decoder(encoder(x)), x).backward()
""",
    "mba": _HEAD + """emb = nn.Embedding(1000, 16)
counts = torch.randint(1, 500, (1000,))  # n_j: training samples containing feature j (count once, offline)
ids = torch.randint(0, 1000, (32, 5))  # the batch's feature ids
mba = reglab.create("mba", weight=0.01)
logits = emb(ids).sum(dim=1) @ torch.randn(16)
loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.rand(32).round()) + mba(emb.weight, ids, counts)
loss.backward()  # only the rows in the batch get the (1/n_j-scaled) L2 gradient
""",
    "bct": _HEAD + """from reglab.methods.bct import bct_pseudo_classifier

old_model, new_model = nn.Linear(8, 16), nn.Linear(8, 16)
x, y = torch.randn(64, 8), torch.arange(64) % 4
with torch.no_grad():  # the old model's class means: its classifier, frozen (BCT's synthesized classifier)
    w_old = bct_pseudo_classifier(old_model(x), y, num_classes=4)
head = nn.Linear(16, 4)
bct = reglab.create("bct")  # weight 10
f = new_model(x)
loss = nn.functional.cross_entropy(head(f), y) + bct(f, y, w_old)  # new features stay compatible with old ones
loss.backward()
""",
    "codebook_entropy": _HEAD + """codebook = nn.Parameter(torch.randn(64, 8))
z = torch.randn(256, 8, requires_grad=True)  # encoder outputs, flattened over positions
affinity = -torch.cdist(z, codebook).pow(2)  # VQ; for LFQ use 2 * z @ codes.T
entropy = reglab.create("codebook_entropy")  # weight 0.1, τ = 0.01
loss = entropy(affinity)  # + reconstruction and commitment losses
loss.backward()
""",
    "sinkhorn_codes": _HEAD + """codebook = nn.Parameter(torch.randn(4, 16, 8))  # M=4 sub-spaces, K=16 centroids, D/M=8
e = torch.randn(128, 32, requires_grad=True)  # a batch of dense embeddings (D=32)
codes = reglab.create("sinkhorn_codes")(e, codebook)  # (128, 4): balanced over the 16 centroids
quantized = codebook[torch.arange(4), codes].reshape(128, 32)
loss = nn.functional.mse_loss(quantized, e.detach())  # + the ranking loss on quantized embeddings
loss.backward()
""",
    "simvq": _HEAD + """encoder, decoder = nn.Linear(64, 16), nn.Linear(16, 64)
vq = reglab.create("simvq", num_codes=512, dim=16)  # codebook = frozen random basis @ one learnable Linear
x = torch.randn(32, 64)
quantized, vq_loss, indices = vq(encoder(x))
loss = nn.functional.mse_loss(decoder(quantized), x) + vq_loss
loss.backward()
""",
    "token_pooling": _HEAD + """docs = [nn.functional.normalize(torch.randn(n, 128), dim=1) for n in (180, 40, 95)]  # token vectors
pooled = reglab.create("token_pooling", pool_factor=2).transform(docs)  # about half the vectors per document
query = nn.functional.normalize(torch.randn(32, 128), dim=1)
scores = [float((query @ d.T).max(dim=1).values.sum()) for d in pooled]  # MaxSim, unchanged
""",
    "muvera": _HEAD + """docs = [nn.functional.normalize(torch.randn(n, 128), dim=1) for n in (180, 40, 95)]  # token vectors
query = nn.functional.normalize(torch.randn(32, 128), dim=1)
docs_fde = reglab.create("muvera", num_repetitions=10, num_simhash_projections=4, fill_empty_partitions=True).transform(docs)
query_fde = reglab.create("muvera", num_repetitions=10, num_simhash_projections=4).transform(query, query=True)  # same seed
candidates = (docs_fde @ query_fde).argsort(descending=True)  # MIPS, then re-rank with exact MaxSim
""",
    "splade_pooling": _HEAD + """mlm_logits = torch.randn(2, 6, 100, requires_grad=True)  # (batch, tokens, vocabulary) from a masked-LM head
attention_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
docs = reglab.create("splade_pooling")(mlm_logits, attention_mask)  # (batch, vocab) sparse term weights
loss = -docs[0] @ docs[1] + reglab.create("flops", weight=1e-3)(docs)  # ranking loss + FLOPS sparsity
loss.backward()
""",
    "nested_dropout": _HEAD + """encoder, head = nn.Sequential(nn.Linear(8, 32), nn.ReLU()), nn.Linear(32, 4)
nested = reglab.create("nested_dropout", sigma=10.0)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
loss = nn.functional.cross_entropy(head(nested(encoder(x))), y)  # training: keep the first k features
loss.backward()
nested.eval()  # evaluation: all features
""",
    "latent_quantization": _HEAD + """encoder, decoder = nn.Linear(16, 6), nn.Linear(6, 16)
lq = reglab.create("latent_quantization", num_latents=6)  # 10 learnable values per latent
opt = torch.optim.AdamW([{"params": [*encoder.parameters(), *decoder.parameters()], "weight_decay": 0.1},
                         {"params": lq.parameters(), "weight_decay": 0.0}], lr=1e-3)
x = torch.randn(32, 16)
out = lq(encoder(x))  # straight-through quantized latents and the codebook losses
loss = nn.functional.mse_loss(decoder(out.z_hat), x) + out.loss
loss.backward(); opt.step()
""",
    "soft_weighted_suppression": _HEAD + """concept = torch.randn(5, 32)  # the embeddings carrying the content to remove (e.g. its tokens and the EOT tokens)
suppressed = reglab.create("soft_weighted_suppression", alpha=1.0)(concept)  # σ -> σ·exp(-α·σ) on its SVD
""",
    "path_norm": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))  # a ReLU network
pn = reglab.create("path_norm", weight=1e-4)  # L1 path-norm: one forward pass on ones with |θ|
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
loss = nn.functional.cross_entropy(model(x), y) + pn(model, input_shape=(8,))
loss.backward()
print(float(reglab.functional.path_norm(model, (8,), q=2)))  # the L2 path-norm, as a diagnostic
""",
    "condition_number_immunization": _HEAD + """encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 6))
head = nn.Linear(6, 4)
imm = reglab.create("condition_number_immunization", lambda_well=1.0, lambda_ill=1e3)
x_keep, y_keep = torch.randn(32, 8), torch.randint(0, 4, (32,))  # the task the model is for
x_harm = torch.randn(32, 8)  # inputs of the task it should resist being fine-tuned on
z_keep, z_harm = encoder(x_keep), encoder(x_harm)
loss = nn.functional.cross_entropy(head(z_keep), y_keep) + imm(z_keep, z_harm)
loss.backward()
""",
    "coordinate_quantization": _HEAD + """cq = reglab.create("coordinate_quantization")  # box [-2.5, 2.5], 25600 grid points per axis
mlp = nn.Sequential(nn.Linear(3 * 2 * 6, 64), nn.Softplus(beta=100), nn.Linear(64, 1))
points = torch.rand(128, 3) * 5 - 2.5  # ray samples
q = cq(points)  # snapped to grid-cell centres, before the positional encoding
freqs = 2.0 ** torch.arange(6) * torch.pi
enc = torch.cat([torch.sin(q[..., None] * freqs), torch.cos(q[..., None] * freqs)], -1).flatten(1)
sdf = mlp(enc)
""",
    "adamp": _HEAD + """model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
# Adam without the radial update component on scale-invariant weights (the Linear before BatchNorm)
opt = reglab.create("adamp", params=model.parameters(), base_optimizer=torch.optim.Adam, lr=1e-3, weight_decay=1e-2)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
""",
    "sgdp": _HEAD + """model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
opt = reglab.create("sgdp", params=model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)  # SGD + projection
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
""",
    "qk_norm": _HEAD + """qk = reglab.create("qk_norm")  # per-head LayerNorm of queries and keys (no affine, eps 1e-6)
q, k, v = (torch.randn(2, 4, 10, 16, requires_grad=True) for _ in range(3))  # (batch, heads, tokens, head_dim)
q, k = qk(q, k)  # apply RoPE, if any, after this
out = nn.functional.scaled_dot_product_attention(q, k, v)
out.sum().backward()
""",
    "ngpt_projection": _HEAD + """model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.Linear(16, 8, bias=False))
# rows of the input projection, columns of the output projection (its embedding dim is dim 0) on the unit sphere
opt = reglab.create("ngpt_projection", params=[{"params": [model[0].weight]}, {"params": [model[1].weight], "dim": 0}],
                    base_optimizer=torch.optim.Adam, lr=1e-3)
x = torch.randn(32, 8)
opt.zero_grad(); model(x).pow(2).mean().backward(); opt.step()  # Adam step, then W <- W/‖W‖ along dim
""",
    "ngpt_residual": _HEAD + """block = nn.Linear(16, 16)
residual = reglab.create("ngpt_residual", dim=16)  # h <- Norm(Norm(h) + α(Norm(f(h)) - Norm(h))), α learnable
h = nn.functional.normalize(torch.randn(4, 10, 16), dim=-1)
h = residual(h, block(h))  # instead of h = h + block(h)
h.sum().backward()
""",
    "grassmann_head": _HEAD + """body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
head = reglab.create("grassmann_head", in_features=16, num_classes=4, dim=2)  # one 2-dim subspace per class
opt = torch.optim.SGD(body.parameters(), lr=0.1, momentum=0.9)  # the bases are not given to it
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
loss = nn.functional.cross_entropy(head(body(x)), y)
loss.backward(); opt.step(); head.step_(lr=0.1)  # Riemannian SGD on the class subspaces
""",
    "label_pooling": _HEAD + """model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
pool = reglab.create("label_pooling")
crops = torch.randn(4, 3, 8, 8)  # random crops of 4 training images
label_maps = torch.randn(4, 5, 15, 15)  # each image's stored teacher score map (C, H, W)
boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.2, 0.1, 0.9, 0.8], [0.5, 0.5, 1.0, 1.0], [0.0, 0.3, 0.6, 1.0]])
targets = pool(label_maps, boxes)  # each crop's (x1, y1, x2, y2) in [0, 1] of its image
loss = reglab.functional.soft_cross_entropy(model(crops), targets)
loss.backward()
""",
    "simplex_etf_head": _HEAD + """body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
head = reglab.create("simplex_etf_head", in_features=16, num_classes=4)  # frozen ETF buffer, no parameters
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
loss = nn.functional.cross_entropy(head(body(x)), y)  # only the body learns
loss.backward()
""",
    "negative_repulsion": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
negative = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))  # a copy adapted on the data to forget
reg = reglab.create("negative_repulsion")
regs = reglab.attach(model, reg.on(scope="global"))  # the official form pools all tensors
reg.set_negative(negative)  # copies the adapted model's parameters by name
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))  # the data to keep
loss = nn.functional.cross_entropy(model(x), y) + regs.penalty()  # 100·exp(−d(θ, θ_N))
loss.backward(); opt.step(); regs.step(opt)
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
    "diff_pruning": _HEAD + """body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())  # pretrained part
head = nn.Linear(16, 4)  # new task head: trained densely
dp = reglab.create("diff_pruning", sparsity_pen=1e-3)
dp(body)  # every body weight/bias becomes θ₀ + z⊙z_g⊙δ, θ₀ frozen, δ₀ = 0
opt = torch.optim.Adam([{"params": dp.diff_parameters() + list(head.parameters())},
                        {"params": dp.alpha_parameters(), "lr": 0.1}], lr=1e-3)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
loss = nn.functional.cross_entropy(head(body(x)), y) + dp.penalty()  # + λ·E‖z‖₀
loss.backward(); opt.step()
body.eval(); print(dp.changed_fraction())  # share of pretrained entries the diff changes
""",
    "psd": _HEAD + """from reglab.methods.psd import psd_code

x = torch.randn(32, 81)                                           # e.g. 9×9 image patches
decoder = nn.Linear(64, 81, bias=False)                           # dictionary D
encoder = nn.Sequential(nn.Linear(81, 64), nn.Tanh())             # predictor F
opt = torch.optim.SGD([*decoder.parameters(), *encoder.parameters()], lr=0.01)
loss_fn = reglab.create("psd", sparsity=1.0, beta=1.0)
code = psd_code(x, decoder.weight, sparsity=1.0)                  # z* by FISTA (no gradient)
loss = loss_fn(x, code, decoder(code), encoder(x))                # ‖x − Dz*‖² + λ‖z*‖₁ + β‖z* − F(x)‖²
opt.zero_grad(); loss.backward(); opt.step()
with torch.no_grad():
    decoder.weight /= decoder.weight.norm(dim=0, keepdim=True) + 1e-12   # unit-norm atoms
""",
    "ecoflap": _HEAD + """import torch.nn.functional as F

model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
# ... after training: a few calibration batches and the loss to score the layers with
batches = [(torch.randn(64, 8), torch.randint(0, 4, (64,))) for _ in range(4)]
loss_fn = lambda m, b: F.cross_entropy(m(b[0]), b[1])
sparsities = reglab.create("ecoflap", sparsity=0.5)(model, batches, loss_fn)   # per-layer sparsities, pruned in place
print(sparsities)
""",
    "net_trim": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
# ... after training:
x_calib = torch.randn(256, 8)  # inputs the pruned layers must still fit (e.g. the training set)
reglab.create("net_trim", epsilon_gain=0.05)(model, x_calib)  # min ‖W‖₁ per layer, responses kept within 5 %
print([float((m.weight == 0).float().mean()) for m in model if isinstance(m, nn.Linear)])
""",
    "nvit_pruning": _HEAD + """import torch.nn.functional as F

model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
batches = [(torch.randn(64, 8), torch.randint(0, 4, (64,))) for _ in range(4)]
loss_fn = lambda m, b: F.cross_entropy(m(b[0]), b[1])
pruner = reglab.create("nvit_pruning", num_prune=16, latency_weight=0.0)
masks = pruner(model, batches, loss_fn)            # zeroes the 16 hidden units of lowest (Σ θ·∂L/∂θ)²
print([int(m.sum()) for m in masks])               # units kept per hidden layer; fine-tune afterwards
""",
    "lottery_ticket_sft": _HEAD + """body, head = nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Linear(16, 4)
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))


def train(steps=5):
    opt = torch.optim.Adam(list(body.parameters()) + list(head.parameters()), lr=1e-3)  # fresh, no weight decay
    for _ in range(steps):
        opt.zero_grad(); nn.functional.cross_entropy(head(body(x)), y).backward(); opt.step()


lt = reglab.create("lottery_ticket_sft", proportion=0.1)
lt.begin(body)  # θ₀
train()  # phase 1: full fine-tuning
lt(body)  # keep the 10 % most-changed entries, reset the body to θ₀, mask the other gradients
train()  # phase 2: only those entries (and the head) move
phi = lt.diff(body)  # the sparse diff θ₂ − θ₀
""",
    "nm_sparsity": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
nm = reglab.create("nm_sparsity", n=1, m=4, method="linear", decay_coef=0.1)
nm(model)  # every Linear weight: keep the largest |w| of each 4 along the input; pruned ones scaled by β_t
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(12):  # β_t = max(1 - 0.1·t, 0): the pruned weights fade out of the forward
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    nm.step()
print(nm.beta(), float((model[0].weight == 0).float().mean()))  # 0.0 0.75
""",
    "pseudo_quantization_noise": _HEAD + """from torch.nn.utils import parametrize
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), reglab.create("pseudo_quantization_noise", bits=4),
                      nn.Linear(16, 4))  # noise on the activations, as 4-bit rounding would add
parametrize.register_parametrization(model[0], "weight", reglab.create("pseudo_quantization_noise", bits=4))
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
nn.functional.cross_entropy(model(x), y).backward()  # gradients pass through the noise unchanged
model.eval()  # identity in eval: the clean weights and activations
""",
    "ddpm_ip": _HEAD + """eps_model = nn.Sequential(nn.Linear(2 + 1, 64), nn.ReLU(), nn.Linear(64, 2))
alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)  # linear β schedule
ip = reglab.create("ddpm_ip", gamma=0.1)
x0 = torch.randn(32, 2)
t = torch.randint(0, 1000, (32,))
eps = torch.randn_like(x0)
x_t = ip(x0, eps, alpha_bar[t])  # √ᾱ·x0 + √(1 − ᾱ)·(ε + γξ)
loss = nn.functional.mse_loss(eps_model(torch.cat([x_t, t[:, None] / 1000], 1)), eps)  # the target stays ε
loss.backward()
""",
    "stablemax": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
stablemax = reglab.create("stablemax")
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
loss = nn.functional.cross_entropy(stablemax(model(x)), y)  # StableMax CE: stablemax returns log-probabilities
loss.backward()
""",
    "orthograd": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = reglab.create("orthograd", params=model.parameters(), base_optimizer=torch.optim.AdamW, lr=1e-3,
                    weight_decay=0.0)  # ⊥Grad: each gradient minus its component along its weight
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
""",
    "squared_gradient_norm": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
reg = reglab.create("squared_gradient_norm", weight=0.1)  # (λ/2)·‖∇L‖², forward-difference gradient
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
opt.zero_grad()
loss = reg.backward(lambda: nn.functional.cross_entropy(model(x), y), model)  # writes ∇L + λ·H∇L into .grad
opt.step()
""",
    "ewc": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
x_a = torch.randn(64, 8)  # ... after training on task A:
ewc = reglab.create("ewc", weight=100.0)
regs = reglab.attach(model, ewc)
ewc.consolidate(model, x_a)  # anchors θ* = current weights, F = diagonal Fisher on task A's inputs
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x_b, y_b = torch.randn(32, 8), torch.randint(0, 4, (32,))  # task B
loss = nn.functional.cross_entropy(model(x_b), y_b) + regs.penalty()  # + (λ/2)·Σ F (θ − θ*)²
loss.backward(); opt.step()
""",
    "attention_at": _HEAD + """score, head = nn.Linear(16, 1), nn.Linear(16, 1)  # additive attention over hidden states
h, y = torch.randn(8, 12, 16), torch.randint(0, 2, (8,)).float()  # (batch, tokens, hidden), binary labels
at = reglab.create("attention_at", epsilon=1.0)  # ε: no official default; "iat" via variant="iat"

def loss_of(scores):
    w = torch.softmax(scores, dim=1)
    return nn.functional.binary_cross_entropy_with_logits(head((w.unsqueeze(-1) * h).sum(1)).squeeze(-1), y)

scores = score(h).squeeze(-1)  # pre-softmax attention scores
loss = loss_of(scores)
(g,) = torch.autograd.grad(loss, scores, retain_graph=True)  # ∇_a L
loss = loss + 1.0 * loss_of(at(scores, g))  # L(a) + λ·L(a + ε·g/‖g‖), λ = 1 (official lam_adv)
loss.backward()
""",
    "policy_noise_mask": _HEAD + """classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
policy = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2 * 8 * 8))  # yours: image -> raw (alpha, beta)
pnm = reglab.create("policy_noise_mask", grid=8, kernel=5, sigma=2.0)  # official: grid 64, kernel 13, σ 6
opt = torch.optim.SGD([*classifier.parameters(), *policy.parameters()], lr=0.01)
x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 4, (8,))
alpha, beta = policy(x).chunk(2, dim=1)  # (batch, grid²) each
masked = pnm(x, alpha, beta)  # x · blur(upsample(m)), m ~ Beta(e^α, e^β) per cell
loss = pnm.loss(nn.functional.cross_entropy(classifier(masked), y))  # mean_b log Σ_k p(m_bk) · CE
opt.zero_grad(); loss.backward(); opt.step()
""",
    "hierarchical_channel_sampling": _HEAD + """hcs = reglab.create("hierarchical_channel_sampling")
images = torch.rand(8, 4, 16, 16)  # (batch, channels, H, W): e.g. four stains or sensor bands
out = hcs(images)  # in training: keep m ~ U{1..4} random channels, zero the rest, scale by 4/m
""",
    "vanishing_gradient": _HEAD + """cell, head = nn.RNNCell(3, 16, nonlinearity="tanh"), nn.Linear(16, 1)
params = [*cell.parameters(), *head.parameters()]
opt = torch.optim.SGD(params, lr=0.01)
omega = reglab.create("vanishing_gradient")  # α·Ω, α = 2
u, target = torch.randn(20, 8, 3), torch.randn(8, 1)  # (time, batch, features)
h, states = torch.zeros(8, 16), []
for u_t in u:  # unroll, keeping every state x_t
    h = cell(u_t, h)
    states.append(h)
loss = nn.functional.mse_loss(head(h), target)
grad_h = torch.autograd.grad(loss, states, retain_graph=True)  # ∂E/∂x_t through the future steps
total = loss + omega(torch.stack(grad_h), torch.stack(states), cell.weight_hh)
opt.zero_grad(); total.backward()
torch.nn.utils.clip_grad_norm_(params, 1.0)  # the paper's clipping (cutoff 1)
opt.step()
""",
    "refresh_learning": _HEAD + """model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
refresh = reglab.create("refresh_learning")
x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
refresh(model, lambda: nn.functional.cross_entropy(model(x), y))  # unlearn the batch a little (ascent step)
opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()  # then relearn it
refresh.end_task(model, x, y)  # after each task: F <- τF + E[p_y (∇ log p_y)²] damps later unlearning
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
