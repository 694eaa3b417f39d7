"""The default selection decays what timm and the HF Trainer decay (issue 26, item 13)."""

import pytest
import torch
from torch import nn

import reglab


def _selected(model):
    return sorted(n for n, _ in reglab.attach(model, [reglab.L2(1.0)]).parameters_of("l2"))


class TinyViT(nn.Module):
    """timm-style: token tables declared in no_weight_decay(), LayerScale gammas, an embedding table."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Linear(4, 8)
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.my_table = nn.Parameter(torch.zeros(3, 8))  # declared below with a pattern
        self.words = nn.Embedding(10, 8)
        self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8)) for _ in range(2)])
        self.gamma = nn.Parameter(torch.ones(8))
        self.head = nn.Linear(8, 3)

    def no_weight_decay(self):
        return {"pos_embed", "cls_token", "my_*"}


def timm_rule(model, no_weight_decay_list):
    """timm 1.0.x `param_groups_weight_decay` (timm/optim/_param_groups.py), its decay group."""
    import fnmatch

    return sorted(
        n for n, p in model.named_parameters()
        if p.requires_grad and not (p.ndim <= 1 or n.endswith(".bias")
                                    or any(fnmatch.fnmatch(n, pat) for pat in no_weight_decay_list))
    )  # fmt: skip


def test_no_weight_decay_is_honoured_and_embeddings_are_decayed():
    model = TinyViT()
    got = _selected(model)
    assert "words.weight" in got and "my_table" not in got and "pos_embed" not in got
    assert got == timm_rule(model, model.no_weight_decay())
    assert "my_table" in [n for n, _ in reglab.attach(model, [reglab.L2().on(exclude=None)]).parameters_of("l2")]


def test_against_timm_itself_when_installed():
    timm_optim = pytest.importorskip("timm.optim")  # needs torchvision; skipped where it does not import
    model = TinyViT()
    groups = timm_optim.param_groups_weight_decay(model, weight_decay=0.1, no_weight_decay_list=model.no_weight_decay())
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert _selected(model) == sorted(n for n, p in model.named_parameters() if id(p) in decayed)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_against_the_hf_trainers_own_grouping(arch):
    transformers = pytest.importorskip("transformers")
    from transformers import Trainer
    from transformers.trainer_pt_utils import get_parameter_names

    torch.manual_seed(0)
    if arch == "bert":
        cfg = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=16, max_position_embeddings=16)
        model = transformers.BertForSequenceClassification(cfg)
    else:
        cfg = transformers.GPT2Config(vocab_size=50, n_embd=8, n_layer=1, n_head=2, n_positions=16)
        model = transformers.GPT2LMHeadModel(cfg)
    params = dict(model.named_parameters(remove_duplicate=False))  # HF names a tied weight twice (lm_head)
    hf = {id(params[n]) for n in Trainer.get_decay_parameter_names(None, model)}  # reads nothing from self
    got = _selected(model)
    assert any("embeddings" in n or "wte" in n for n in got)  # embedding tables are decayed, as HF does
    assert {id(params[n]) for n in got} == hf
    # HF's older rule (get_parameter_names with LayerNorm, then no bias) agrees too
    older = {id(params[n]) for n in get_parameter_names(model, [nn.LayerNorm]) if "bias" not in n}
    assert {id(params[n]) for n in got} == older
