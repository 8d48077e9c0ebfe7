"""How good is a heatmap? Faithfulness (region perturbation / pixel flipping and AOPC), the axioms
(conservation, continuity, implementation and input invariance) and selectivity, sanity checks (model
parameter randomisation, the random-heatmap baseline), localisation, and choosing a method's parameter
by its score.

Every metric is batch first and runs where the inputs are (CPU or GPU); the model is never modified.
Results are small dataclasses with ``.value`` (the headline number), ``.higher_is_better`` and
``.to_dict()`` (JSON-ready).

>>> from unmask import evaluate
>>> e = unmask.explain(model, images, "lrp.epsilon_plus_flat")
>>> morf = evaluate.region_perturbation(model, images, e, order="morf", steps=100, region=9,
...                                     low=net.low, high=net.high)   # uniform noise in the valid range
>>> morf.aopc, morf.curve.shape                                       # a float, torch.Size([101])
>>> evaluate.selectivity(model, images, e, low=net.low, high=net.high).value   # AOPC_MoRF - AOPC_LeRF
>>> evaluate.select(model, images, "lrp.epsilon_gamma_box", "gamma", [0.0, 0.25, 1.0],
...                 params={"low": net.low, "high": net.high}).best_value
"""
from .._utils.deprecation import renamed as _renamed
from .axioms import (
    ConservationResult,
    ContinuityResult,
    InvarianceResult,
    SelectivityResult,
    absorb_input_shift,
    conservation,
    continuity,
    implementation_invariance,
    input_invariance,
    selectivity,
    translate,
)
from .localization import (
    LocalizationResult,
    box_mask,
    context_density,
    pointing_game,
    relevance_mass,
    relevance_rank,
)
from .perturbation import (
    ORDERS,
    PERTURBATIONS,
    PerturbationResult,
    aopc,
    perturbation_curves,
    pixel_flipping,
    region_perturbation,
    region_ranks,
    replacement,
)
from .sanity import (
    BaselineResult,
    RandomizationResult,
    model_randomization,
    random_baseline,
    random_heatmap,
    spearman,
    ssim,
)
from .selection import METRICS, SelectionResult, select

__all__ = [
    "BaselineResult",
    "ConservationResult",
    "ContinuityResult",
    "InvarianceResult",
    "LocalizationResult",
    "METRICS",
    "ORDERS",
    "PERTURBATIONS",
    "PerturbationResult",
    "RandomizationResult",
    "SelectionResult",
    "SelectivityResult",
    "absorb_input_shift",
    "aopc",
    "box_mask",
    "conservation",
    "context_density",
    "continuity",
    "implementation_invariance",
    "input_invariance",
    "model_randomization",
    "perturbation_curves",
    "pixel_flipping",
    "pointing_game",
    "random_baseline",
    "random_heatmap",
    "region_perturbation",
    "region_ranks",
    "relevance_mass",
    "relevance_rank",
    "replacement",
    "select",
    "selectivity",
    "spearman",
    "ssim",
    "translate",
]

__getattr__ = _renamed(
    __name__,
    {
        "model_randomisation": "model_randomization",
        "RandomisationResult": "RandomizationResult",
        "LocalisationResult": "LocalizationResult",
        "context_use": "context_density",
    },
    globals(),
)
