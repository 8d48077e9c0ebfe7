"""Import Zennit 0.5.1 without torchvision: its __init__ imports torchvision.models.resnet, which
cannot be imported beside the CPU torch wheel, so the tests' stand-in is registered first."""
from __future__ import annotations

from torchvision_standin import install


def import_zennit():
    install()
    import zennit.attribution
    import zennit.canonizers
    import zennit.composites
    import zennit.torchvision

    return zennit


def efficientnet_lite_batchnorms(model) -> list[tuple[list[str], str]]:
    """``([convolution], batchnorm)`` name pairs of EfficientNet-Lite (efficientnet_lite_pytorch)."""
    pairs = [(["_conv_stem"], "_bn0"), (["_conv_head"], "_bn1")]
    for name, module in model.named_modules():
        if type(module).__name__ == "MBConvBlock":
            if module._block_args.expand_ratio != 1:
                pairs.append(([f"{name}._expand_conv"], f"{name}._bn0"))
            pairs += [([f"{name}._depthwise_conv"], f"{name}._bn1"), ([f"{name}._project_conv"], f"{name}._bn2")]
    return pairs


def fold_batchnorms_in_float64(model, pairs) -> None:
    """Fold each BatchNorm into its convolution in float64 and round once, as unmask folds
    (``a = gamma / sqrt(var + eps)``, ``W' = W a``, ``b' = b a + beta - mean a``), and leave the BatchNorm an
    exact identity (mean 0, variance 1, eps 0): the oracle then runs the very float32 network unmask's graph
    runs, so a float32 comparison measures the rules' round-off, not the forward's (in place)."""
    import torch

    with torch.no_grad():
        for (conv_name,), bn_name in pairs:
            conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
            scale = (bn.running_var.double() + bn.eps).rsqrt() * bn.weight.double()
            shift = -bn.running_mean.double() * scale + bn.bias.double()
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            dtype = conv.weight.dtype
            conv.weight.copy_((conv.weight.double() * scale.reshape(-1, *[1] * (conv.weight.dim() - 1))).to(dtype))
            conv.bias = torch.nn.Parameter((bias * scale + shift).to(dtype), requires_grad=False)
            bn.running_mean.zero_(), bn.running_var.fill_(1.0), bn.weight.fill_(1.0), bn.bias.zero_()
            bn.eps = 0.0


def efficientnet_lite_canonizers(model, merge: bool = True):
    """Zennit canonizers that make EfficientNet-Lite0 (efficientnet_lite_pytorch) canonical LRP for the oracle:

    - each BatchNorm merged into its convolution *exactly*: Zennit's merge leaves the BatchNorm computing
      ``x / sqrt(1 + eps)``; with eps set to 0 while merged it is the identity (``merge=False`` for a model
      whose BatchNorms are identities already, see :func:`fold_batchnorms_in_float64`);
    - each skip add ``x + inputs`` of an MBConvBlock routed through ``zennit.layer.Sum`` (rule Norm).

    Zennit's SequentialMergeBatchNorm cannot pair them: the padded convolutions are not leaves.
    """
    zennit = import_zennit()
    import torch
    import zennit.layer

    class ExactNamedMergeBatchNorm(zennit.canonizers.NamedMergeBatchNorm):
        def register(self, linears, batch_norm):
            super().register(linears, batch_norm)
            self.eps, batch_norm.eps = batch_norm.eps, 0.0

        def remove(self):
            super().remove()
            self.batch_norm.eps = self.eps

    def forward_with_sum(self, inputs, drop_connect_rate=None):
        assert not self.has_se  # Lite models have no squeeze-excitation
        x = inputs
        if self._block_args.expand_ratio != 1:
            x = self._swish(self._bn0(self._expand_conv(inputs)))
        x = self._swish(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return self.canonizer_sum(torch.stack([x, inputs], dim=-1))

    def sum_attributes(name, module):
        if type(module).__name__ != "MBConvBlock":
            return None
        args = module._block_args
        if not (module.id_skip and args.stride == 1 and args.input_filters == args.output_filters):
            return None
        return {"forward": forward_with_sum.__get__(module), "canonizer_sum": zennit.layer.Sum()}

    sums = zennit.canonizers.AttributeCanonizer(sum_attributes)
    return [ExactNamedMergeBatchNorm(efficientnet_lite_batchnorms(model)), sums] if merge else [sums]
