"""One source of truth for a method's parameters: the constructor's signature.

get_params() reads it for every registered method, the LRP presets spell theirs out (the command line
accepts exactly those), unknown names are refused with the allowed ones listed, and the old names
(internal_batch_size, random_state, Attribution.name, .params, composites.COMMON) warn and still work.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

import unmask
from unmask import registry
from unmask._utils.params import parameter_names, signature_parameters
from unmask._utils.validation import ParameterError
from unmask.attribution import IntegratedGradients, Occlusion, Saliency
from unmask.cli import _params as cli_params
from unmask.cli._args import UsageError
from unmask.lrp import PRESETS, composites


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3)).eval()


X = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
FORWARDS = {"lrp", "smoothgrad"}  # take **params for what they build (a composite, the smoothed method)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return _model()


@pytest.mark.parametrize("name", registry.methods())
def test_get_params_is_the_signature_and_the_explanation_records_it(model, name):
    cls = unmask.get_method(name)
    method = cls(model)
    named = set(signature_parameters(cls))
    params = method.get_params()
    if name in FORWARDS:
        assert named <= set(params) and parameter_names(cls) is None
    else:
        assert set(params) == named == parameter_names(cls)
        defaults = {key: p.default for key, p in inspect.signature(cls).parameters.items() if key != "model"}
        if name != "gradcam":  # its layer=None resolves to the last convolution's name
            assert params == defaults
    explanation = method.explain(X)
    recorded = {k: v for k, v in explanation.params.items() if k != "composite"}
    assert recorded.keys() == {k for k in params if k != "composite"}
    expected = f"lrp.{method.composite.name}" if isinstance(method, unmask.LRP) else cls.method
    assert explanation.method == expected
    assert type(method)(model, **params).get_params().keys() == params.keys()  # a clone takes them back


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_signature_is_what_the_method_and_the_cli_accept(model, name):
    preset = PRESETS[name]
    own = list(signature_parameters(preset, ()))
    assert own[-3:] == ["stabilizer", "maxpool", "zero_bias"]
    cls = unmask.get_method(f"lrp.{name}")
    assert cli_params.parameter_names(f"lrp.{name}", cls) == {*own, "init"}
    assert list(cls(model).get_params()) == ["init", *own]
    assert preset().get_params() == {k: p.default for k, p in inspect.signature(preset).parameters.items()}
    with pytest.raises(ValueError, match=f"lrp.{name} does not take bogus; its parameters: {', '.join(own)}"):
        unmask.explain(model, X, f"lrp.{name}", bogus=1)


def test_a_preset_class_a_preset_name_and_the_registered_method_give_the_same_relevance(model):
    by_class = unmask.LRP(model, composites.EpsilonGammaBox(gamma=0.5, epsilon=0.1)).explain(X, target=1)
    by_name = unmask.LRP(model, "epsilon_gamma_box", gamma=0.5, epsilon=0.1).explain(X, target=1)
    registered = unmask.explain(model, X, "lrp.epsilon_gamma_box", target=1, gamma=0.5, epsilon=0.1)
    assert torch.equal(by_class.relevance, by_name.relevance) and torch.equal(by_name.relevance, registered.relevance)
    assert by_class.params == by_name.params == registered.params
    assert registered.params["gamma"] == 0.5 and registered.params["composite"] == "epsilon_gamma_box"
    default = unmask.explain(model, X, "lrp.epsilon_gamma_box", target=1)
    assert not torch.equal(default.relevance, registered.relevance)


def test_repr_shows_the_values_that_differ_from_the_defaults(model):
    assert repr(composites.EpsilonPlusFlat(epsilon=0.5)) == "EpsilonPlusFlat(epsilon=0.5)"
    assert repr(unmask.get_method("lrp.epsilon")(model, epsilon=0.25)) == "LRP_epsilon(epsilon=0.25)"
    assert repr(unmask.LRP(model, "epsilon", epsilon=0.25)) == "LRP(composite='epsilon', epsilon=0.25)"
    assert repr(IntegratedGradients(model, steps=8)) == "IntegratedGradients(steps=8)"
    assert repr(Saliency(model)) == "Saliency()"
    smooth = unmask.get_method("smoothgrad")(model, base_method="integrated_gradients", steps=4)
    assert repr(smooth) == "SmoothGrad(steps=4, base_method='integrated_gradients')"


def test_set_params_rebuilds_with_the_checks_and_refuses_unknown_names(model):
    method = unmask.get_method("lrp.epsilon")(model)
    assert method.set_params(epsilon=0.25) is method and method.get_params()["epsilon"] == 0.25
    fresh = unmask.explain(model, X, "lrp.epsilon", target=0, epsilon=0.25)
    assert torch.equal(method.explain(X, target=0).relevance, fresh.relevance)
    occlusion = Occlusion(model, window=4)
    occlusion.set_params(stride=2)
    assert occlusion.get_params() == {"window": 4, "stride": 2, "fill": 0.0, "batch_size": 64}
    with pytest.raises(ParameterError, match="Occlusion has no parameter gamma; its parameters: window, stride, fill, batch_size"):
        occlusion.set_params(gamma=1)
    with pytest.raises(ParameterError, match="window"):
        occlusion.set_params(window=0)
    lrp = unmask.LRP(model, "epsilon_gamma_box")
    lrp.set_params(composite="epsilon", epsilon=0.25)
    assert lrp.get_params() == {"composite": "epsilon", "init": "logit", **composites.Epsilon(epsilon=0.25).get_params()}


def test_the_cli_refuses_unknown_parameters_naming_the_allowed_ones():
    cls = unmask.get_method("lrp.epsilon_plus_flat")
    with pytest.raises(UsageError) as error:
        cli_params.method_params("lrp.epsilon_plus_flat", cls, None, [("lrp.epsilon_plus_flat", "gamma", 1.0)])
    assert str(error.value) == ("--param lrp.epsilon_plus_flat:gamma: method 'lrp.epsilon_plus_flat' has no parameter "
                                "'gamma'; it takes epsilon, init, maxpool, stabilizer, zero_bias")
    chosen = cli_params.method_params("lrp.epsilon_plus_flat", cls, None, [("lrp.epsilon_plus_flat", "epsilon", 0.1)])
    assert chosen == {"epsilon": 0.1}


def test_one_method_commands_check_their_params_against_the_signature():
    ig = unmask.get_method("integrated_gradients")
    assert cli_params.one_method_params("integrated_gradients", ig, ["steps=8", "integrated_gradients:batch_size=4"]) == {
        "steps": 8, "batch_size": 4}
    with pytest.raises(UsageError, match="--param window: method 'integrated_gradients' has no parameter 'window'; "
                                         "it takes baseline, batch_size, quadrature, steps"):
        cli_params.one_method_params("integrated_gradients", ig, ["window=3"])
    with pytest.raises(UsageError, match="'saliency' is not the method run"):
        cli_params.one_method_params("integrated_gradients", ig, ["saliency:steps=3"])


def test_cli_batch_size_default_only_bounds_unbounded_batches_and_the_old_name_maps_to_the_new():
    ig, occlusion = unmask.get_method("integrated_gradients"), unmask.get_method("occlusion")
    assert cli_params.method_params("integrated_gradients", ig, None, []) == cli_params.CLI_DEFAULT_PARAMS
    assert cli_params.method_params("occlusion", occlusion, None, []) == {}  # its own default, 64, stays
    old = [("integrated_gradients", "internal_batch_size", 4)]
    assert cli_params.method_params("integrated_gradients", ig, None, old) == {"batch_size": 4}


def test_integrated_gradients_internal_batch_size_is_a_deprecated_alias(model):
    reference = IntegratedGradients(model, steps=6, batch_size=5).explain(X, target=2).relevance
    with pytest.warns(DeprecationWarning, match="internal_batch_size= is now batch_size="):
        old = IntegratedGradients(model, steps=6, internal_batch_size=5)
    assert old.get_params()["batch_size"] == 5 and torch.equal(old.explain(X, target=2).relevance, reference)
    with pytest.warns(DeprecationWarning, match="internal_batch_size is now IntegratedGradients.batch_size"):
        assert old.internal_batch_size == 5
    with pytest.raises(TypeError, match="both batch_size= and its old name internal_batch_size="):
        IntegratedGradients(model, batch_size=2, internal_batch_size=5)
    assert "internal_batch_size" not in inspect.signature(IntegratedGradients).parameters


def test_one_method_name_attribute_and_the_old_ones_warn(model):
    saliency = Saliency(model)
    assert saliency.method == Saliency.method == "saliency" == saliency.explain(X).method
    with pytest.warns(DeprecationWarning, match="Saliency.name is now Saliency.method"):
        assert Saliency.name == "saliency"
    with pytest.warns(DeprecationWarning):
        assert saliency.name == "saliency"
    lrp = unmask.get_method("lrp.epsilon")(model)
    assert lrp.method == "lrp.epsilon" and unmask.LRP.method == "lrp"
    for method in (saliency, lrp):
        with pytest.warns(DeprecationWarning, match=r"params is now .*get_params\(\)"):
            assert method.params == method.get_params()
    with pytest.warns(DeprecationWarning, match="COMMON is deprecated"):
        assert composites.COMMON == ("stabilizer", "maxpool", "zero_bias")


def _blobs(n: int = 60, size: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    maps = rng.normal(scale=0.05, size=(n, size, size))
    maps[np.arange(n) % 2 == 0, 2:5, 2:5] += 1.0
    maps[np.arange(n) % 2 == 1, 7:10, 7:10] += 1.0
    return maps.astype(np.float32)


def test_spray_seed_and_its_deprecated_alias_random_state_and_a_callable_progress():
    from unmask.analyze import spray

    maps = _blobs()
    done: list[int] = []
    result = spray(maps, embedding=None, seed=3, progress=done.append)
    assert result.settings["seed"] == 3
    assert done and all(isinstance(step, int) and step > 0 for step in done)
    assert sum(done) > len(maps)  # the kNN search counts every sample, the eigensolver its products
    with pytest.warns(DeprecationWarning, match="random_state= is now seed="):
        old = spray(maps, embedding=None, random_state=3)
    assert np.array_equal(old.labels, result.labels) and np.array_equal(old.eigenvalues, result.eigenvalues)
