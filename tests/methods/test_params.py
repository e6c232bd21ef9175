"""Each method parameter is declared once, beside its class (`params.Param`): default, type,
range and help; the class's `__init__` only assigns them, and every way of building a method
(make_method, Python, `Classifier.load`) validates them the same way, once."""

from __future__ import annotations

import inspect
import json
from typing import ClassVar

import pytest
from annotated_types import Ge

from clfbench.errors import ClfbenchError
from clfbench.methods.base import (
    METHODS,
    Classifier,
    accepted_params,
    check_method_params,
    get_method,
    make_method,
    register_method,
)
from clfbench.methods.params import Param, declared_params, method_params


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_parameter_is_declared_with_a_type_and_a_help(name):
    klass = get_method(name)
    declared = declared_params(klass)
    assert list(declared) == [p.name for p in method_params(name)]  # the signature's order
    assert set(declared) == accepted_params(name)
    assert all(p.help for p in declared.values())
    signature = inspect.signature(klass.__init__)
    assert all(signature.parameters[n].default is p.default for n, p in declared.items())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_declared_defaults_pass_their_own_rules(name):
    from clfbench.methods.params import check_params

    klass = get_method(name)
    check_params(klass, {n: p.default for n, p in declared_params(klass).items()}, name)


def test_python_construction_is_checked_as_make_method_is():
    from clfbench.methods.encoder_ft import EncoderFineTune

    with pytest.raises(ClfbenchError) as built:
        EncoderFineTune(epochs=0)
    with pytest.raises(ClfbenchError) as made:
        make_method("encoder-ft", epochs=0)
    assert str(built.value) == str(made.value) == \
        "method 'encoder-ft': parameter epochs=0 (expected a value >= 1)"
    with pytest.raises(ClfbenchError, match="give lr .* or lr_grid"):  # a rule across parameters
        EncoderFineTune(lr=1e-4, lr_grid=[1e-4])
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        EncoderFineTune(epoch=2)


def test_the_init_only_assigns():
    from clfbench.methods.encoder_ft import EncoderFineTune

    m = EncoderFineTune("distilbert-base-uncased", epochs=2)
    assert (m.model, m.epochs, m.lr, m.seed) == ("distilbert-base-uncased", 2, None, 99)
    assert m.get_params()["epochs"] == 2 and set(m.get_params()) == accepted_params("encoder-ft")


def test_shared_parameters_are_declared_once():
    from clfbench.methods.decoder_head import DecoderHead
    from clfbench.methods.encoder_ft import EncoderFineTune, EncoderLoRA
    from clfbench.methods.llm_sft import LLMSFT
    from clfbench.methods.torch_training import HFSequenceClassifier, LoRAParams
    from clfbench.methods.tuning import Tunable

    for klass in (EncoderFineTune, EncoderLoRA, DecoderHead):
        assert declared_params(klass)["epochs"] is vars(HFSequenceClassifier)["epochs"]
    for klass in (EncoderFineTune, DecoderHead, LLMSFT):
        assert declared_params(klass)["tune"] is vars(Tunable)["tune"]
    assert declared_params(EncoderLoRA)["r"] is vars(LoRAParams)["r"]
    assert declared_params(DecoderHead)["r"].default == 16  # its own default, the same help
    assert declared_params(DecoderHead)["r"].help == vars(LoRAParams)["r"].help


def test_a_subclass_overrides_a_default():
    from clfbench.methods.encoder_ft import EncoderFineTune

    class LongerFineTune(EncoderFineTune):
        epochs = EncoderFineTune.epochs.but(10)
        extra: int = Param(1, "a parameter of its own", Ge(1))
        other: str = Param("a", "and another")

    assert LongerFineTune().epochs == 10 and EncoderFineTune().epochs == 3
    names = list(inspect.signature(LongerFineTune.__init__).parameters)[1:]
    assert names == [*(p.name for p in method_params("encoder-ft")), "extra", "other"]
    with pytest.raises(ClfbenchError, match=r"parameter extra=0 \(expected a value >= 1\)"):
        LongerFineTune(extra=0)


class PlainPlugin(Classifier):
    """A plug-in written the old way: a hand-written `__init__`, no declarations."""

    name = "plain-plugin"
    param_help: ClassVar[dict[str, str]] = {"alpha": "smoothing"}
    param_rules: ClassVar[dict[str, tuple]] = {"alpha": (Ge(0),)}

    def __init__(self, alpha: float = 1.0, label: str = "x") -> None:
        self.alpha = alpha
        self.label = label


def test_a_plugin_with_a_plain_init_keeps_working():
    register_method("plain-plugin", f"{__name__}:PlainPlugin")
    try:
        assert [(p.name, p.default, p.help) for p in method_params("plain-plugin")] == \
            [("alpha", 1.0, "smoothing"), ("label", "x", "")]
        assert make_method("plain-plugin", alpha=2.0).get_params() == {"alpha": 2.0, "label": "x"}
        with pytest.raises(ClfbenchError, match=r"parameter alpha=-1 \(expected a value >= 0\)"):
            check_method_params("plain-plugin", {"alpha": -1})
        with pytest.raises(ClfbenchError, match="unknown parameter"):
            make_method("plain-plugin", beta=1)
        assert declared_params(PlainPlugin) == {}
    finally:
        METHODS.pop("plain-plugin")


def test_a_plugin_subclassing_a_method_with_its_own_init_keeps_the_declarations_it_inherits():
    from clfbench.methods.encoder_ft import EncoderFineTune

    class Wrapped(EncoderFineTune):
        name = "wrapped-ft"

        def __init__(self, temperature: float = 1.0, epochs: int = 3) -> None:
            self.temperature = temperature
            super().__init__(epochs=epochs)

    register_method("wrapped-ft", f"{__name__}:Wrapped")
    globals()["Wrapped"] = Wrapped
    try:
        assert [p.name for p in method_params("wrapped-ft")] == ["temperature", "epochs"]
        assert method_params("wrapped-ft")[1].help == declared_params(EncoderFineTune)["epochs"].help
        with pytest.raises(ClfbenchError, match=r"parameter epochs=0 \(expected a value >= 1\)"):
            make_method("wrapped-ft", epochs=0)
        with pytest.raises(ClfbenchError, match=r"parameter epochs=0 \(expected a value >= 1\)"):
            Wrapped(epochs=0)  # built in Python, through the method's own validation
        assert make_method("wrapped-ft", temperature=2.0).get_params() == {"temperature": 2.0, "epochs": 3}
    finally:
        METHODS.pop("wrapped-ft")
        globals().pop("Wrapped")


def test_load_refuses_a_bad_saved_value_in_one_line(tmp_path):
    (tmp_path / "method.json").write_text(json.dumps(
        {"method": "tfidf-lr", "params": {"ngram_max": 0}, "labels": ["a", "b"]}))
    with pytest.raises(ClfbenchError) as e:
        Classifier.load(tmp_path)
    assert str(e.value) == (f"{tmp_path / 'method.json'}: method 'tfidf-lr': parameter ngram_max=0 "
                            "(expected a value >= 1)")
