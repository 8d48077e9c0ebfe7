"""Attribution methods beyond LRP: gradients, integrated gradients, SmoothGrad, guided backprop /
deconvnet, Grad-CAM, occlusion and a random baseline. Importing this package registers them all."""

from .baseline import RandomAttribution
from .cam import GradCAM
from .gradient import Gradient, GradientXInput, Saliency, Sensitivity
from .guided import Deconvnet, GuidedBackprop
from .integrated import IntegratedGradients
from .occlusion import Occlusion
from .smoothgrad import SmoothGrad

__all__ = [
    "Deconvnet",
    "Gradient",
    "GradientXInput",
    "GradCAM",
    "GuidedBackprop",
    "IntegratedGradients",
    "Occlusion",
    "RandomAttribution",
    "Saliency",
    "Sensitivity",
    "SmoothGrad",
]
