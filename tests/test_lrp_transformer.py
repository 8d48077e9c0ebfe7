"""Transformer rules (AttnLRP, CP-LRP): agreement with LXT 2.1, each rule's formula and conservation,
the method's API, composites by kind, the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import unmask
from unmask import cli
from unmask.lrp import Composite, preset, rules
from unmask.lrp import transformer as T
from transformer_models import TinyViT, lxt_relevance

pytest.importorskip("lxt.explicit.functional", reason="LXT 2.1 is the test oracle (make install-test)")

TARGET = torch.tensor([0, 3, 1])


def _vit(attention: str) -> tuple[TinyViT, torch.Tensor]:
    torch.manual_seed(0)
    return TinyViT(attention=attention).double().eval(), torch.randn(3, 3, 8, 8, dtype=torch.float64)


def _error(relevance: torch.Tensor, reference: torch.Tensor) -> float:
    return float((relevance - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize("attention", ["explicit", "fused", "mha"])
@pytest.mark.parametrize("mode", ["attnlrp", "cp"])
def test_agrees_with_lxt(attention, mode):
    """The same ViT written with plain torch ops (explicit attention, the fused kernel or
    nn.MultiheadAttention) and with LXT's functional ops: the same relevance. LXT stabilises with
    z + eps, unmask with z + eps sign(z); with eps = 1e-9 on both sides that difference is ~4e-7."""
    model, x = _vit(attention)
    explanation = unmask.explain(model, x, method="lrp.attnlrp", target=TARGET, attention=mode, epsilon=1e-9,
                                 stabilizer=1e-9)
    reference = lxt_relevance(model, x, TARGET, mode, epsilon=1e-9)
    assert explanation.relevance.shape == x.shape
    assert reference.abs().max() > 1e-3
    assert _error(explanation.relevance, reference) < 1e-5


@pytest.mark.parametrize("mode", ["attnlrp", "cp"])
def test_with_lxts_stabiliser_the_rules_are_lxts_exactly(monkeypatch, mode):
    """At the default eps = 1e-6: swapping unmask's stabiliser for LXT's z + eps leaves nothing between them."""
    model, x = _vit("explicit")
    lxt_divide = lambda r, z, eps: r / (z + eps)  # noqa: E731
    monkeypatch.setattr(rules, "divide", lxt_divide)
    monkeypatch.setattr(T, "divide", lxt_divide)
    relevance = unmask.explain(model, x, method="lrp.attnlrp", target=TARGET, attention=mode).relevance
    assert _error(relevance, lxt_relevance(model, x, TARGET, mode, epsilon=1e-6)) < 1e-10


def test_modes_and_gamma_change_the_result_and_stay_finite():
    model, x = _vit("fused")
    results = {
        name: unmask.explain(model, x, method="lrp.attnlrp", target=TARGET, **params).relevance
        for name, params in {"attnlrp": {}, "cp": {"attention": "cp"}, "gamma": {"gamma": 0.25}}.items()
    }
    for relevance in results.values():
        assert torch.isfinite(relevance).all() and relevance.abs().max() > 0
    assert _error(results["cp"], results["attnlrp"]) > 1e-3
    assert _error(results["gamma"], results["attnlrp"]) > 1e-3
    explanation = unmask.explain(model, x, method="lrp.attnlrp", attention="cp")
    assert explanation.method == "lrp.attnlrp" and explanation.params["attention"] == "cp"


def test_bad_parameters_are_clear_errors():
    model, x = _vit("explicit")
    with pytest.raises(ValueError, match="attention must be 'attnlrp' or 'cp'"):
        unmask.explain(model, x, method="lrp.attnlrp", attention="full")
    with pytest.raises(ValueError, match="does not take alpha"):
        unmask.explain(model, x, method="lrp.attnlrp", alpha=2)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        unmask.explain(model, x, method="lrp.attnlrp", gamma=-1)


def test_rules_table_lists_the_transformer_kinds():
    table = unmask.LRP(TinyViT(attention="explicit").eval(), composite="attnlrp").rules()
    kinds = {row[2]: str(row[3]) for row in table}
    assert kinds["layernorm"].startswith("LayerNormEpsilon") and kinds["softmax"] == "SoftmaxTaylor()"
    assert kinds["matmul"].startswith("MatMul") and "layernorm" in str(table)
    fused = unmask.LRP(TinyViT(attention="fused").eval(), composite="attnlrp").rules()
    assert any(row[2] == "attention" and str(row[3]).startswith("Attention(mode='attnlrp'") for row in fused)
    mha = unmask.LRP(TinyViT(attention="mha").eval(), composite="attnlrp").rules()
    assert any(row[2] == "attention" and "MultiheadAttention" not in str(row[3]) for row in mha)


def test_composites_map_the_new_rules_by_kind():
    model, x = _vit("explicit")
    constant_attention = Composite({"matmul": T.MatMul(1e-9, constant_softmax=True)},
                                   base=preset("attnlrp", epsilon=1e-9, stabilizer=1e-9).base)
    relevance = unmask.LRP(model, composite=constant_attention).explain(x, TARGET).relevance
    cp = unmask.explain(model, x, method="lrp.attnlrp", target=TARGET, attention="cp", epsilon=1e-9,
                        stabilizer=1e-9).relevance
    torch.testing.assert_close(relevance, cp, rtol=0, atol=1e-12)


# one rule at a time: formulas and conservation ------------------------------------------------------

class LayerNormNet(nn.Module):
    def __init__(self, norm: nn.Module, channels_last: bool = False):
        super().__init__()
        self.norm, self.channels_last = norm, channels_last

    def forward(self, x):
        if self.channels_last:  # timm's LayerNorm2d: F.layer_norm over channels of a permuted map
            return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.norm.weight, None, 1e-6).permute(0, 3, 1, 2)
        return self.norm(x)


def _conserved(model: nn.Module, x: torch.Tensor, **params) -> tuple[torch.Tensor, torch.Tensor]:
    relevance = unmask.LRP(model, composite="attnlrp", init="onehot", stabilizer=1e-12, **params)
    seed = torch.ones_like(model(x))
    values, output = relevance.graph.forward(x)
    return relevance.engine.backward(values, seed * output), output


@pytest.mark.parametrize("norm", [nn.LayerNorm(6, bias=False), nn.GroupNorm(2, 6, affine=True)], ids=["layer", "group"])
def test_layer_norm_rule_is_epsilon_with_constant_std_and_conserves_without_bias(norm):
    torch.manual_seed(1)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        if getattr(norm, "bias", None) is not None:
            norm.bias.zero_()
    x = torch.randn(2, 6, 3, 6, dtype=torch.float64)
    model = LayerNormNet(norm.double()).eval()
    got, output = _conserved(model, x)
    torch.testing.assert_close(got.sum((1, 2, 3)), output.sum((1, 2, 3)), rtol=1e-6, atol=1e-8)
    # the formula: gradient of y = (x - mean) / [std] * w at x, times x, with R = y
    leaf = x.clone().requires_grad_(True)
    dims = (-1,) if isinstance(norm, nn.LayerNorm) else (2, 3, 4)
    grouped = leaf if isinstance(norm, nn.LayerNorm) else leaf.reshape(2, 2, 3, 3, 6)
    std = (grouped.var(dims, unbiased=False, keepdim=True) + norm.eps).sqrt().detach()
    y = ((grouped - grouped.mean(dims, keepdim=True)) / std).reshape(x.shape)
    weight = norm.weight if isinstance(norm, nn.LayerNorm) else norm.weight.reshape(1, -1, 1, 1)
    y = y * weight
    (grad,) = torch.autograd.grad(y, leaf, torch.ones_like(y))
    torch.testing.assert_close(got, grad * x, rtol=1e-6, atol=1e-9)


def test_channels_last_functional_layer_norm_conserves():
    torch.manual_seed(2)
    model = LayerNormNet(nn.LayerNorm(5, bias=False), channels_last=True).double().eval()
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    got, output = _conserved(model, x)
    torch.testing.assert_close(got.sum(), output.sum(), rtol=1e-6, atol=1e-8)


class Pieces(nn.Module):
    """softmax, a product of two input-dependent matrices, an elementwise product, einsum."""

    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def forward(self, x):
        a, b = x[:, :3], x[:, 3:]
        if self.op == "softmax":
            return torch.softmax(x, dim=-1)
        if self.op == "matmul":
            return a @ b.transpose(-2, -1)
        if self.op == "einsum":
            return torch.einsum("bik,bjk->bij", a, b)
        if self.op == "bmm":
            return torch.bmm(a, b.transpose(1, 2))
        return a * b


def _relevance_for(op: str, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    explainer = unmask.LRP(Pieces(op).eval(), composite="attnlrp", epsilon=0.0, stabilizer=1e-12)
    values, _ = explainer.graph.forward(x)
    return explainer.engine.backward(values, r)


def test_softmax_taylor_rule_formula():
    torch.manual_seed(3)
    x, r = torch.randn(2, 6, 5, dtype=torch.float64), torch.randn(2, 6, 5, dtype=torch.float64)
    s = x.softmax(-1)
    torch.testing.assert_close(_relevance_for("softmax", x, r), x * (r - s * r.sum(-1, keepdim=True)))


@pytest.mark.parametrize("op", ["matmul", "einsum", "bmm"])
def test_matrix_products_split_epsilon_uniform_and_conserve(op):
    torch.manual_seed(4)
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    a, b = x[:, :3], x[:, 3:]
    o = a @ b.transpose(-2, -1)
    r = torch.randn_like(o)
    got = _relevance_for(op, x, r)
    s = r / (2 * o)
    torch.testing.assert_close(got[:, :3], a * (s @ b), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(got[:, 3:], b * (s.transpose(-2, -1) @ a), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(got.sum(), r.sum(), rtol=1e-6, atol=1e-8)


def test_elementwise_product_splits_half_each():
    torch.manual_seed(5)
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    r = torch.randn(2, 3, 4, dtype=torch.float64)
    got = _relevance_for("mul", x, r)
    torch.testing.assert_close(got, torch.cat([r / 2, r / 2], 1))


def test_masked_fused_attention_and_its_causal_form_are_finite_and_agree():
    """A boolean mask and is_causal=True give the same relevance, masked logits get nothing."""

    class Masked(nn.Module):
        def __init__(self, causal: bool):
            super().__init__()
            self.causal = causal
            self.register_buffer("mask", torch.ones(4, 4, dtype=torch.bool).tril())

        def forward(self, x):
            q = x * 1.5
            if self.causal:
                return F.scaled_dot_product_attention(q, x, x, is_causal=True)
            return F.scaled_dot_product_attention(q, x, x, attn_mask=self.mask)

    torch.manual_seed(6)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    masked = unmask.explain(Masked(False).eval(), x, method="lrp.attnlrp", target=lambda out: out.sum((1, 2)))
    causal = unmask.explain(Masked(True).eval(), x, method="lrp.attnlrp", target=lambda out: out.sum((1, 2)))
    assert torch.isfinite(masked.relevance).all()
    torch.testing.assert_close(masked.relevance, causal.relevance)


def test_presets_keep_working_on_layer_norm_models():
    model, x = _vit("explicit")
    for method in ("lrp.epsilon", "lrp.epsilon_plus_flat"):
        relevance = unmask.explain(model, x, method=method, target=TARGET).relevance
        assert torch.isfinite(relevance).all() and relevance.abs().max() > 0


def test_user_model_is_untouched():
    model, x = _vit("mha")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unmask.explain(model, x, method="lrp.attnlrp")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_command_line_explains_with_attnlrp(tmp_path, capsys):
    image = tmp_path / "shape.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    code = cli.main(["explain", str(image), "--model", "cleverhans-vit", "--out", str(out), "--no-progress",
                     "--method", "lrp.attnlrp", "--param", "attention='cp'"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["methods"] == ["lrp.attnlrp"] and results["params"]["lrp.attnlrp"] == {"attention": "cp"}
    relevance = np.load(out / results["images"][0]["methods"]["lrp.attnlrp"]["npy"])
    assert relevance.shape[-2:] == (32, 32) and np.isfinite(relevance).all()
