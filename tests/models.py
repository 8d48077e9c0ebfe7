"""Small networks shaped like well-known architectures, written here (torchvision is not importable)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    """VGG-16 layout (13 convolutions, 5 max-pools, 3 dense layers), channels divided by ``shrink``."""

    def __init__(self, batch_norm: bool = False, shrink: int = 8, classes: int = 10, size: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            width = v // shrink
            layers.append(nn.Conv2d(channels, width, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        hidden = 4096 // (shrink * 8)
        self.classifier = nn.Sequential(
            nn.Linear(channels * 4, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(), nn.Linear(hidden, classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class BasicBlock(nn.Module):
    """ResNet basic block with the functional ``out += identity`` of torchvision."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)  # the same ReLU module used twice


class ResNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DenseLayer(nn.Module):
    """DenseNet layer: BatchNorm -> ReLU -> conv (pre-activation), output concatenated to the input."""

    def __init__(self, channels: int, growth: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, 2 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return torch.cat([x, out], 1)


class DenseNet(nn.Module):
    def __init__(self, classes: int = 10, growth: int = 4):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.norm0 = nn.BatchNorm2d(8)
        self.block = nn.Sequential(DenseLayer(8, growth), DenseLayer(8 + growth, growth))
        channels = 8 + 2 * growth
        self.transition = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, 8, 1, bias=False),
                                        nn.AvgPool2d(2))
        self.norm5 = nn.BatchNorm2d(8)
        self.classifier = nn.Linear(8, classes)

    def forward(self, x):
        x = F.relu(self.norm0(self.conv0(x)))
        x = self.transition(self.block(x))
        x = F.relu(self.norm5(x), inplace=True)
        x = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return self.classifier(x)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (fresh ones are identities)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model


def seeded(cls, *args, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(cls(*args, **kwargs), seed).eval()


def zero_shifts(model: nn.Module) -> nn.Module:
    """All biases and BatchNorm means zero: LRP-0 is then exactly gradient x input on piecewise-linear nets."""
    with torch.no_grad():
        for module in model.modules():
            for name in ("bias", "running_mean"):
                value = getattr(module, name, None)
                if isinstance(value, torch.Tensor):
                    value.zero_()
    return model


def calibrate_batchnorm(model: nn.Module, inputs: torch.Tensor) -> nn.Module:
    """BatchNorm running statistics estimated on ``inputs`` (one train-mode forward, cumulative average), then
    eval mode: a random-weight network gets activations of the scale training gives, instead of the decay that
    fresh statistics (mean 0, var 1) cause over depth (timm's efficientnet_b0 at 64 px: logits ~1e-5)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(inputs)
    return model.eval()
