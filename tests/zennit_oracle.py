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


def efficientnet_lite_canonizers(model):
    """Zennit canonizers that make EfficientNet-Lite0 (efficientnet_lite_pytorch) canonical LRP for the oracle:

    - each BatchNorm merged into its convolution *exactly*: Zennit's merge leaves the BatchNorm computing
      ``x / sqrt(1 + eps)``; with eps set to 0 while merged it is the identity;
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

    pairs = [(["_conv_stem"], "_bn0"), (["_conv_head"], "_bn1")]
    for name, module in model.named_modules():
        if type(module).__name__ == "MBConvBlock":
            if module._block_args.expand_ratio != 1:
                pairs.append(([f"{name}._expand_conv"], f"{name}._bn0"))
            pairs += [([f"{name}._depthwise_conv"], f"{name}._bn1"), ([f"{name}._project_conv"], f"{name}._bn2")]

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

    return [ExactNamedMergeBatchNorm(pairs), zennit.canonizers.AttributeCanonizer(sum_attributes)]
