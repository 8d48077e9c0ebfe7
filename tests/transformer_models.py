"""Small vision transformers for the transformer-rule tests, each written twice.

:class:`TinyViT` is plain torch (modules, ``@``, ``softmax``; or the fused
``F.scaled_dot_product_attention``; or ``nn.MultiheadAttention``), which unmask traces and explains.
:func:`lxt_relevance` runs the same network, with the same parameters, through LXT 2.1's
``lxt.explicit.functional`` operations (``linear_epsilon``, ``layer_norm``, ``softmax``, ``matmul``,
``add2``, ``mul2``) and ``lxt.explicit.rules`` (``identity`` for GELU, ``epsilon_lrp`` for CP-LRP's
``A V`` with ``A`` held constant), whose backward pass gives LXT's relevance.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 4


def patches(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/4 * W/4, C * 16): non-overlapping 4 x 4 patches, row by row."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // PATCH) * (w // PATCH), c * PATCH * PATCH)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, attention: str):
        super().__init__()
        self.heads, self.attention = heads, attention
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)
        if attention == "mha":
            self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention == "mha":
            return self.mha(x, x, x, need_weights=False)[0]
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.attention == "fused":
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            weights = ((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = weights @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attend(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    """Patches -> linear embedding, class token (concatenated), position embedding (added) -> blocks
    -> LayerNorm -> class token -> linear head. ``attention``: "explicit", "fused" or "mha"."""

    def __init__(self, size: int = 8, dim: int = 16, heads: int = 2, depth: int = 2, classes: int = 5,
                 attention: str = "explicit"):
        super().__init__()
        tokens = (size // PATCH) ** 2
        self.embed = nn.Linear(3 * PATCH * PATCH, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.5)
        self.blocks = nn.Sequential(*(Block(dim, heads, attention) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        with torch.no_grad():  # non-trivial norm affines, so the test sees their weights and biases
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
                if isinstance(m, nn.Linear):
                    m.bias.normal_(0, 0.2)
            for block in self.blocks:
                if attention == "mha":
                    block.mha.in_proj_weight.copy_(block.qkv.weight)
                    block.mha.in_proj_bias.copy_(block.qkv.bias)
                    block.mha.out_proj.weight.copy_(block.proj.weight)
                    block.mha.out_proj.bias.copy_(block.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(patches(x))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def lxt_relevance(model: TinyViT, x: torch.Tensor, target: torch.Tensor, attention: str = "attnlrp",
                  epsilon: float = 1e-6) -> torch.Tensor:
    """LXT's relevance of ``x`` for ``target`` (relevance at the output: the target logit, one-hot)."""
    import lxt.explicit.functional as lf
    from lxt.explicit.rules import epsilon_lrp, identity

    def linear(t: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        return lf.linear_epsilon(t, layer.weight, layer.bias, epsilon)

    def norm(t: torch.Tensor, layer: nn.LayerNorm) -> torch.Tensor:  # lf.layer_norm, with its stabiliser exposed
        return lf.layer_norm_grad_fn.apply(t, layer.weight, layer.bias, layer.eps, epsilon)

    x = x.detach().clone().requires_grad_(True)
    t = linear(patches(x), model.embed)
    t = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), t], dim=1)
    t = lf.add2(t, model.pos_embed, epsilon=epsilon)
    for block in model.blocks:
        b, n, d = t.shape
        h = block.heads
        q, k, v = linear(norm(t, block.norm1), block.qkv).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        q = lf.mul2(q, 1.0 / math.sqrt(d // h))
        weights = lf.softmax(lf.matmul(q, k.transpose(-2, -1), epsilon=epsilon), -1)
        if attention == "cp":
            a = epsilon_lrp(torch.matmul, epsilon, weights.detach(), v)
        else:
            a = lf.matmul(weights, v, epsilon=epsilon)
        a = linear(a.transpose(1, 2).reshape(b, n, d), block.proj)
        t = lf.add2(t, a, epsilon=epsilon)
        m = linear(identity(F.gelu, linear(norm(t, block.norm2), block.fc1)), block.fc2)
        t = lf.add2(t, m, epsilon=epsilon)
    out = linear(norm(t, model.norm)[:, 0], model.head)
    seed = torch.zeros_like(out).scatter_(1, target[:, None], 1.0) * out.detach()
    out.backward(seed)
    return x.grad
