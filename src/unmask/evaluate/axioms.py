"""Properties an explanation should have (Montavon et al. 2018; Sundararajan et al. 2017; Kindermans et al.
2019) and selectivity, which the trivial uniform heatmap lacks although it has all the others."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..explanation import Explanation
from ..targets import Target
from .._utils.validation import check_choice, check_float, check_int
from ._common import (
    Method,
    Relevance,
    check_model_inputs,
    explain_batched,
    finite_mean,
    forward_scores,
    heatmap,
    make_explainer,
    method_name,
    relevance_tensor,
    resolve,
    result_dict,
    to_list,
)
from .perturbation import Perturbation, PerturbationResult, perturbation_curves

# --------------------------------------------------------------------------------------------------
# conservation


@dataclass
class ConservationResult:
    """Conservation per image: ``error = sum_i R_i - f(x)``, ``relative = |error| / |f(x)|``."""

    relevance_sum: torch.Tensor
    output: torch.Tensor
    error: torch.Tensor
    relative: torch.Tensor

    @property
    def mean_abs_error(self) -> float:
        return float(self.error.abs().mean())

    @property
    def value(self) -> float:
        """The headline number: the mean relative error (lower is better)."""
        return finite_mean(self.relative)

    higher_is_better = False

    def passes(self, rtol: float = 1e-2, atol: float = 1e-6) -> bool:
        """Whether every image conserves: ``|error| <= atol + rtol * |f(x)|``."""
        return bool((self.error.abs() <= atol + rtol * self.output.abs()).all())

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self, "conservation", ("value", "mean_abs_error", "relevance_sum", "output", "error", "relative"))


def conservation(relevance: Relevance, output: torch.Tensor | None = None) -> ConservationResult:
    """Conservation (Bach et al. 2015; Montavon et al. 2018, "Methods for interpreting and understanding
    deep neural networks", Digital Signal Processing 73, sec. 7): the relevance of an input should add up to
    the explained output, ``sum_i R_i(x) = f(x)``. Reports ``error = sum_i R_i - f(x)`` and
    ``|error| / |f(x)|`` per image.

    ``relevance`` is an :class:`~unmask.Explanation` (``output`` defaults to its explained logit) or a
    tensor with ``output`` the explained value per image ``(B,)``. Conservation alone says little: a
    uniform heatmap ``R_i = f(x) / N`` conserves exactly (see :func:`selectivity`).
    """
    tensor = relevance_tensor(relevance).detach()
    if output is None:
        if not isinstance(relevance, Explanation) or relevance.explained_output is None:
            raise ValueError("pass output= (the explained value per sample) with a relevance tensor")
        output = relevance.explained_output
    output = torch.as_tensor(output).detach().to(tensor.device).double().reshape(-1)
    if output.numel() != tensor.shape[0]:
        raise ValueError(f"output has {output.numel()} values for {tensor.shape[0]} samples of relevance")
    if not torch.isfinite(tensor).all():
        raise ValueError("relevance contains NaN or Inf values")
    sums = tensor.flatten(1).double().sum(1)
    error = sums - output
    relative = error.abs() / output.abs()
    return ConservationResult(sums.cpu(), output.cpu(), error.cpu(), relative.cpu())


# --------------------------------------------------------------------------------------------------
# continuity


def translate(inputs: torch.Tensor, shift: int, direction: str = "x", fill: Any = "min") -> torch.Tensor:
    """``inputs`` moved by ``shift`` pixels (positive: right for ``"x"``, down for ``"y"``); the uncovered
    border takes ``fill``: ``"min"`` (each image's minimum, "black"), ``"edge"`` (the border pixels
    repeated) or a number."""
    check_choice("direction", direction, ("x", "y"))
    dim = 3 if direction == "x" else 2
    size = inputs.shape[dim]
    shift = int(shift)
    if shift == 0:
        return inputs.clone()
    if abs(shift) >= size:
        moved = torch.empty_like(inputs)
        covered = None
    else:
        moved = torch.roll(inputs, shifts=shift, dims=dim)
        covered = slice(0, shift) if shift > 0 else slice(size + shift, size)
    index = [slice(None)] * 4
    index[dim] = covered if covered is not None else slice(None)
    if fill == "min":
        value = inputs.flatten(1).amin(1).view(-1, 1, 1, 1)
        moved[tuple(index)] = value.expand_as(moved[tuple(index)])
    elif fill == "edge":
        if covered is None:
            raise ValueError("fill='edge' needs |shift| < the image size")
        edge = [slice(None)] * 4
        edge[dim] = slice(0, 1) if shift > 0 else slice(size - 1, size)
        source = inputs[tuple(edge)]
        moved[tuple(index)] = source.expand_as(moved[tuple(index)])
    else:
        moved[tuple(index)] = check_float("fill", fill)
    return moved


@dataclass
class ContinuityResult:
    """Continuity along a path of shifted inputs.

    Attributes:
        shifts: the shifts of the path, in pixels (0, the unshifted input, comes first).
        ratios: ``(B, P, P)``: ``||R(x_i) - R(x_j)||_1 / ||x_i - x_j||_2`` for path points ``i, j``; NaN where
            the pair is not compared (the diagonal, equal inputs, or not an ``"origin"`` pair).
        per_image: ``(B,)``: the largest ratio of each image (the continuity score; lower is smoother).
    """

    shifts: list[int]
    ratios: torch.Tensor
    direction: str
    pairs: str

    @property
    def per_image(self) -> torch.Tensor:
        finite = torch.where(torch.isfinite(self.ratios), self.ratios, torch.full_like(self.ratios, -math.inf))
        best = finite.flatten(1).amax(1)
        return torch.where(torch.isinf(best), torch.full_like(best, math.nan), best)

    @property
    def value(self) -> float:
        """Mean over images of the strongest variation (lower is better)."""
        return finite_mean(self.per_image)

    higher_is_better = False

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self, "continuity", ("value", "per_image", "shifts", "direction", "pairs"))


def continuity(
    model: nn.Module,
    inputs: torch.Tensor,
    method: Method,
    target: Target = None,
    *,
    shifts: Sequence[int] = tuple(range(-8, 9, 2)),
    direction: str = "x",
    fill: Any = "min",
    pairs: str = "all",
    params: Mapping[str, Any] | None = None,
    batch_size: int = 16,
) -> ContinuityResult:
    """Explanation continuity of Montavon et al. (2018), "Methods for interpreting and understanding deep
    neural networks", Digital Signal Processing 73, sec. 7.1: the strongest variation of the explanation
    in the input domain,

        max_{x != x'} ||R(x) - R(x')||_1 / ||x - x'||_2,

    estimated on a path of inputs translated by ``shifts`` pixels along ``direction`` (the unshifted input
    is always on the path; see :func:`translate` for ``fill``). ``R`` is the pixel relevance (summed over
    channels) of ``method`` (a registry name with ``params``, or a function ``(model, inputs, target) ->
    relevance``) for the class of the *unshifted* input (``target``, default the prediction).
    ``pairs="all"`` maximises over every pair of path points (the paper's max); ``"origin"`` only over pairs
    with the unshifted input, which is what Quantus 0.6.0's ``Continuity`` does (with its translations,
    ``fill="min"``, and ``abs``/``normalise`` switched off there). All shifted inputs are explained in
    batches of ``batch_size``.
    """
    model, inputs = check_model_inputs(model, inputs)
    check_choice("pairs", pairs, ("all", "origin"))
    batch_size = check_int("batch_size", batch_size)
    shift_list = [0] + [int(s) for s in shifts if int(s) != 0]
    if len(shift_list) < 2:
        raise ValueError("shifts must contain at least one non-zero shift")
    explainer = make_explainer(method, params)
    output = forward_scores(model, inputs, "logit", batch_size)
    index = resolve(output, target)
    points = len(shift_list)
    path = torch.stack([translate(inputs, s, direction, fill) for s in shift_list], 1)  # (B, P, C, H, W)
    flat = path.flatten(0, 1)
    repeated = None if index is None else index.repeat_interleave(points)
    relevance = explain_batched(explainer, model, flat, repeated, batch_size, target)
    maps = heatmap(relevance, flat.shape).view(inputs.shape[0], points, -1).double()
    xs = path.flatten(2).double()
    r_dist = torch.cdist(maps, maps, p=1)
    x_dist = torch.cdist(xs, xs, p=2)
    valid = x_dist > 0
    if pairs == "origin":
        origin = torch.zeros(points, points, dtype=torch.bool, device=valid.device)
        origin[0, 1:] = True
        origin[1:, 0] = True
        valid = valid & origin
    ratios = torch.where(valid, r_dist / torch.where(valid, x_dist, torch.ones_like(x_dist)),
                         torch.full_like(r_dist, math.nan))
    return ContinuityResult(shift_list, ratios.cpu(), direction, pairs)


# --------------------------------------------------------------------------------------------------
# implementation invariance and input invariance


@dataclass
class InvarianceResult:
    """Two explanations that should be equal: ``a`` and ``b``, ``(B, ...)``, and how far apart they are.

    Attributes:
        output_difference: ``max |f_a(x) - f_b(x')|`` of the explained outputs: the models must agree.
        relative: per image ``||R_a - R_b||_1 / ||R_a||_1`` (lower is better; 0 when invariant).
        max_abs: per image ``max |R_a - R_b|``.
    """

    relative: torch.Tensor
    max_abs: torch.Tensor
    output_difference: float
    name: str = "invariance"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return finite_mean(self.relative)

    higher_is_better = False

    def passes(self, rtol: float = 1e-4) -> bool:
        return bool((self.relative <= rtol).all())

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self, self.name, ("value", "relative", "max_abs", "output_difference"), **self.details)


def _compare(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = a.flatten(1).double(), b.flatten(1).to(a.device).double()
    difference = (a - b).abs()
    norm = a.abs().sum(1)
    relative = difference.sum(1) / torch.where(norm > 0, norm, torch.ones_like(norm))
    return relative.cpu(), difference.amax(1).cpu()


def implementation_invariance(
    model_a: nn.Module,
    model_b: nn.Module,
    inputs: torch.Tensor,
    method: Method,
    target: Target = None,
    *,
    params: Mapping[str, Any] | None = None,
    batch_size: int = 16,
) -> InvarianceResult:
    """Implementation invariance of Sundararajan, Taly & Yan (2017), "Axiomatic attribution for deep
    networks", ICML: two functionally equal networks (same output for every input, different inner
    structure) should get the same explanation. Explains ``inputs`` with ``method`` on both models for the
    class ``model_a`` predicts (or ``target``) and compares ``R_a`` with ``R_b``.
    """
    model_a, inputs = check_model_inputs(model_a, inputs)
    model_b, _ = check_model_inputs(model_b, inputs)
    batch_size = check_int("batch_size", batch_size)
    out_a = forward_scores(model_a, inputs, "logit", batch_size)
    out_b = forward_scores(model_b, inputs, "logit", batch_size)
    if out_a.shape != out_b.shape:
        raise ValueError(f"the models' outputs differ in shape: {tuple(out_a.shape)} vs {tuple(out_b.shape)}")
    index = resolve(out_a, target)
    explainer_a = make_explainer(method, params)
    explainer_b = make_explainer(method, params)
    r_a = explain_batched(explainer_a, model_a, inputs, index, batch_size, target)
    r_b = explain_batched(explainer_b, model_b, inputs, index, batch_size, target)
    relative, max_abs = _compare(r_a, r_b)
    return InvarianceResult(relative, max_abs, float((out_a - out_b).abs().max()), "implementation_invariance",
                            {"method": method_name(method)})


def _first_layer(model: nn.Module, inputs: torch.Tensor) -> tuple[str, nn.Module, torch.Size]:
    """The first Conv/Linear module the forward pass runs, which must receive the model's input itself
    (possibly reshaped, e.g. flattened), and the shape it receives for one sample."""
    seen: list[tuple[str, nn.Module, Any]] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            handles.append(module.register_forward_hook(
                lambda m, args, out, name=name: seen.append((name, m, args[0])) if not seen else None
            ))
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not seen:
        raise ValueError("the model has no Conv or Linear layer to absorb an input shift")
    name, module, received = seen[0]
    sample = inputs[:1]
    if received.numel() != sample.numel() or not torch.equal(received.reshape(-1), sample.reshape(-1)):
        raise ValueError(
            f"the first layer {name!r} ({type(module).__name__}) does not receive the raw input (the model "
            "transforms it first); input invariance needs the shift to reach that layer unchanged"
        )
    return name, module, received.shape


def absorb_input_shift(model: nn.Module, shift: Any, inputs: torch.Tensor) -> nn.Module:
    """A copy of ``model`` that gives on ``x + shift`` what ``model`` gives on ``x`` (Kindermans et al.):
    the first layer's bias takes ``b - W shift``. ``shift`` is a number or a tensor broadcasting to one
    input sample (e.g. one value per channel, ``(1, C, 1, 1)``); the first layer must receive the input
    unchanged (a flatten in front of a Linear layer is fine).

    A zero-padded convolution would see the padding move relative to the shifted image, so in the copy
    its padding becomes an explicit ``ConstantPad2d`` of ``shift`` (a number only) in front of an unpadded
    convolution; reflect/replicate/circular padding shift with the image and need nothing. The user's
    model is left untouched.
    """
    name, layer, received = _first_layer(model, inputs)
    copy_model = copy.deepcopy(model)
    target = copy_model.get_submodule(name)
    weight = target.weight.detach()
    sample = inputs[:1]
    shift_tensor = torch.as_tensor(shift, dtype=weight.dtype, device=weight.device)
    if shift_tensor.dim() == 1 and shift_tensor.numel() > 1 and sample.dim() > 2:
        shift_tensor = shift_tensor.view(1, -1, *([1] * (sample.dim() - 2)))  # one value per channel
    try:
        full = torch.broadcast_to(shift_tensor, sample.shape).reshape(received)
    except RuntimeError:
        raise ValueError(
            f"shift of shape {tuple(shift_tensor.shape)} does not broadcast to one input sample "
            f"{tuple(sample.shape)}; give a number or one value per input channel"
        ) from None
    if isinstance(target, nn.Linear):
        if full.dim() != 2:
            raise ValueError(f"the first layer {name!r} is a Linear layer receiving {tuple(received)}; "
                             "only (batch, features) inputs are handled")
        correction = weight @ full[0]
    else:
        per_channel = full.flatten(2)[0]  # (C, spatial)
        if not bool((per_channel == per_channel[:, :1]).all()):
            raise ValueError(f"the first layer {name!r} is a convolution: the shift must be constant over space")
        shift_vector = per_channel[:, 0]
        groups = target.groups
        per_group = weight.shape[1]
        out_per_group = weight.shape[0] // groups
        sums = weight.flatten(2).sum(2).view(groups, out_per_group, per_group)  # (G, O/G, I/G)
        correction = torch.einsum("goi,gi->go", sums, shift_vector.view(groups, per_group)).reshape(-1)
    if target.bias is None:
        target.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))
    with torch.no_grad():
        target.bias.sub_(correction)
    shift_tensor = full.flatten()
    padding = getattr(target, "padding", 0)
    padded = isinstance(target, nn.modules.conv._ConvNd) and target.padding_mode == "zeros" and (
        padding == "same" or (not isinstance(padding, str) and any(p != 0 for p in padding))
    )
    if padded:
        if not isinstance(target, nn.Conv2d) or isinstance(padding, str):
            raise ValueError(
                f"the first layer {name!r} ({type(target).__name__}, padding={padding!r}) pads with zeros; only "
                "Conv2d with explicit padding can absorb a shift (or use padding_mode='replicate')"
            )
        if not bool((shift_tensor == shift_tensor[0]).all()):
            raise ValueError(
                f"the first layer {name!r} pads with zeros; a per-channel shift cannot be absorbed there: use one number"
            )
        ph, pw = padding
        target.padding = (0, 0)
        pad = nn.ConstantPad2d((pw, pw, ph, ph), float(shift_tensor[0]))
        parent_name, _, child = name.rpartition(".")
        if not child:
            raise ValueError("the model is a single zero-padded convolution; wrap it in nn.Sequential")
        parent = copy_model.get_submodule(parent_name) if parent_name else copy_model
        setattr(parent, child, nn.Sequential(pad, target))
    return copy_model.eval()


def input_invariance(
    model: nn.Module,
    inputs: torch.Tensor,
    method: Method,
    shift: Any = 1.0,
    target: Target = None,
    *,
    params: Mapping[str, Any] | None = None,
    shifted_params: Sequence[str] = ("low", "high", "baseline"),
    batch_size: int = 16,
) -> InvarianceResult:
    """Input invariance of Kindermans et al. (2019), "The (un)reliability of saliency methods", in
    Explainable AI, LNCS 11700: a constant shift of the input, absorbed by the first layer's bias, changes
    nothing the network computes, so it should change nothing in the explanation. Compares ``R`` of
    ``model`` on ``x`` with ``R`` of :func:`absorb_input_shift` ``(model, shift)`` on ``x + shift``.

    Parameters of the method that are points in input space (``shifted_params``: ``low``, ``high``,
    ``baseline``) are shifted too for the second explanation. Gradient is input invariant; gradient x input
    and LRP rules that use the input value (e.g. z^B, LRP-0 at the first layer) are not.
    """
    model, inputs = check_model_inputs(model, inputs)
    batch_size = check_int("batch_size", batch_size)
    shifted_model = absorb_input_shift(model, shift, inputs)
    shift_tensor = torch.as_tensor(shift, dtype=inputs.dtype, device=inputs.device)
    if shift_tensor.numel() > 1:
        shift_tensor = shift_tensor.view(1, -1, *([1] * (inputs.dim() - 2)))
    shifted_inputs = inputs + shift_tensor
    out = forward_scores(model, inputs, "logit", batch_size)
    out_shifted = forward_scores(shifted_model, shifted_inputs, "logit", batch_size)
    index = resolve(out, target)
    params = dict(params or {})
    moved = {key: (torch.as_tensor(value, dtype=inputs.dtype, device=inputs.device) + shift_tensor
                   if key in shifted_params else value) for key, value in params.items()}
    r = explain_batched(make_explainer(method, params), model, inputs, index, batch_size, target)
    r_shifted = explain_batched(make_explainer(method, moved), shifted_model, shifted_inputs, index, batch_size, target)
    relative, max_abs = _compare(r, r_shifted)
    return InvarianceResult(relative, max_abs, float((out - out_shifted).abs().max()), "input_invariance",
                            {"method": method_name(method), "shift": to_list(torch.as_tensor(shift))})


# --------------------------------------------------------------------------------------------------
# selectivity


@dataclass
class SelectivityResult:
    """MoRF and LeRF curves of one heatmap and the area between them.

    ``value = AOPC_MoRF - AOPC_LeRF``: large when removing the most relevant regions hurts far more than
    removing the least relevant; 0 for a heatmap that does not tell regions apart (uniform).
    """

    morf: PerturbationResult
    lerf: PerturbationResult

    @property
    def per_image(self) -> torch.Tensor:
        return self.morf.aopc_per_image - self.lerf.aopc_per_image

    @property
    def value(self) -> float:
        return self.morf.aopc - self.lerf.aopc

    higher_is_better = True

    def passes(self, margin: float = 0.0) -> bool:
        """Whether the heatmap is selective: MoRF falls faster than LeRF by more than ``margin``."""
        return self.value > margin

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self, "selectivity", ("value", "per_image"), morf_aopc=self.morf.aopc, lerf_aopc=self.lerf.aopc)


def selectivity(
    model: nn.Module,
    inputs: torch.Tensor,
    relevance: Relevance,
    target: Target = None,
    *,
    region: int = 9,
    steps: int | None = 100,
    perturbation: Perturbation = "uniform",
    score: str = "logit",
    **options: Any,
) -> SelectivityResult:
    """Selectivity (Montavon et al. 2018, sec. 7.2, "Methods for interpreting and understanding deep neural
    networks"): removing the features with the highest relevance should make the score fall fastest. Runs
    :func:`region_perturbation` most relevant first and least relevant first in one batched sweep (same
    noise) and reports the area between the two curves,

        AOPC_MoRF - AOPC_LeRF = 1 / (L + 1) * < sum_{k=0..L} f(x^k_LeRF) - f(x^k_MoRF) >,

    (the "ABPC" of Schulz et al. 2020, "Restricting the flow", ICLR). A uniform heatmap conserves, is
    continuous and implementation invariant (Montavon et al. 2018, "Methods for interpreting and understanding deep neural networks"), but ties order its regions the
    same way both ways, so its selectivity is exactly 0.
    """
    results = perturbation_curves(
        model, inputs, {"relevance": relevance}, target, orders=("morf", "lerf"), region=region, steps=steps,
        perturbation=perturbation, score=score, **options,
    )["relevance"]
    return SelectivityResult(results["morf"], results["lerf"])
