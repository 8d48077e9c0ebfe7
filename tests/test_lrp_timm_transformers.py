"""AttnLRP and CP-LRP on timm's transformers and ConvNeXt, untouched (random weights, small inputs), and
on a model built on nn.MultiheadAttention: relevance of the input's shape, finite, conserving where the
rules conserve."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import unmask
from torchvision_standin import install

install()
try:
    import timm
except ImportError:  # pragma: no cover - make install-test installs timm
    timm = None
needs_timm = pytest.mark.skipif(timm is None, reason="timm 1.0.31 is a test-only dependency (make install-test)")

MODES = ("attnlrp", "cp")


def _zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for module in model.modules():
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
    return model


def _shares(model: nn.Module, x: torch.Tensor) -> dict[str, list[float]]:
    """For each mode: the share of the explained logit that reaches the input, per sample."""
    shares = {}
    for mode in MODES:
        explanation = unmask.explain(model, x, method="lrp.attnlrp", attention=mode)
        assert explanation.relevance.shape == x.shape
        assert torch.isfinite(explanation.relevance).all() and explanation.relevance.abs().max() > 0
        logit = explanation.output.gather(1, explanation.target[:, None])[:, 0]
        shares[mode] = (explanation.relevance.sum((1, 2, 3)) / logit).tolist()
    return shares


@needs_timm
def test_convnext_conserves_with_zero_biases():
    """ConvNeXt: LayerNorm2d / channels-last LayerNorm, GELU, layer scale, residual adds. With zero biases
    every rule on the way conserves (no attention, so both modes agree)."""
    torch.manual_seed(0)
    model = _zero_biases(timm.create_model("convnext_tiny", pretrained=False).eval())
    shares = _shares(model, torch.randn(2, 3, 32, 32))
    print("convnext_tiny share of the logit at the input:", shares)
    for mode in MODES:
        assert all(abs(s - 1) < 0.05 for s in shares[mode])
    assert shares["attnlrp"] == pytest.approx(shares["cp"])


@needs_timm
@pytest.mark.parametrize("name", ["vit_small_patch16_224", "deit_small_patch16_224"])
def test_vision_transformers_give_finite_relevance(name):
    """ViT / DeiT at 32 x 32 (4 patches + class token), fused attention as timm ships it. With zero biases
    the relevance the class token, the position embedding and the softmax's bias absorb is what does not
    reach the image; the share that does is printed (measured: see the closing note)."""
    torch.manual_seed(0)
    model = _zero_biases(timm.create_model(name, pretrained=False, img_size=32).eval())
    shares = _shares(model, torch.randn(2, 3, 32, 32))
    print(f"{name} share of the logit at the image tokens:", shares)
    for mode in MODES:
        assert all(0 < s < 1.5 for s in shares[mode])


@needs_timm
def test_swin_gives_finite_relevance():
    """Swin at 56 x 56 (window 7): shifted windows (roll), relative position bias as an additive mask."""
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=56).eval()
    _shares(model, torch.randn(1, 3, 56, 56))


class MultiheadNet(nn.Module):
    """A convolution stem, nn.MultiheadAttention (sequence first or batch first), mean over tokens, head."""

    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.stem = nn.Conv2d(3, 16, 4, stride=4)
        self.norm = nn.LayerNorm(16)
        self.attention = nn.MultiheadAttention(16, 4, batch_first=batch_first)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        tokens = self.norm(self.stem(x).flatten(2).transpose(1, 2))
        sequence = tokens if self.batch_first else tokens.transpose(0, 1)
        attended, _ = self.attention(sequence, sequence, sequence)
        if not self.batch_first:
            attended = attended.transpose(0, 1)
        return self.head((tokens + attended).mean(1))


def test_multihead_attention_model_in_both_layouts():
    torch.manual_seed(0)
    first = MultiheadNet(batch_first=True).eval()
    second = MultiheadNet(batch_first=False).eval()
    second.load_state_dict(first.state_dict())
    x = torch.randn(2, 3, 16, 16)
    shares = _shares(first, x)
    print("nn.MultiheadAttention model share of the logit at the input:", shares)
    for mode in MODES:
        a = unmask.explain(first, x, method="lrp.attnlrp", attention=mode).relevance
        b = unmask.explain(second, x, method="lrp.attnlrp", attention=mode).relevance
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
