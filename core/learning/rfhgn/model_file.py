"""The checks of a fitted RF-HGN's file (kind ``"model"``), without torch.

:meth:`core.learning.rfhgn.model.FittedModel.load` builds the network from
what :func:`check_model_file` returns; the studio's window, which never
imports torch, runs the same checks when it opens a model or a project
(``studio.worker_process.PackedModel.from_file``), so a damaged model is
refused there with the same message. What needs the network itself (the
layers' input widths against the encoding) is checked when the network is
built, in the process that evaluates it.
"""
from __future__ import annotations

from core.schema import Arr, Field, check_arrays, check_fields
from core.learning.hgn import LAYERS
from ..learned import stored_settings, train_system_of
from .config import RFConfig

#: the header of a model file (core.schema.Field; arrays: :func:`check_model_file`)
MODEL_FIELDS = {
    "config": Field("dict"),
    "encoding": Field("str", required=False),
    "dim": Field("int", choices=(2, 3)),
    "constant": Field("number", required=False),
    "n_ref": Field("int", lo=1),
    "e_ref": Field("int", required=False, null=True, lo=0),
    "info": Field("dict", required=False, null=True),
    "train_system": Field("dict", required=False),
}


def check_model_file(header: dict, arrays: dict, name: str):
    """``(config, train_system)`` of a model file's header and arrays after
    checking the header against :data:`MODEL_FIELDS`, the stored settings,
    every array's dtype, shape (against the layer widths) and finiteness,
    and the training system; HGNError naming the file (``name``) and the
    field otherwise."""
    check_fields(header, MODEL_FIELDS, f"{name}: header")
    stored = dict(header["config"])
    stored.setdefault("frame_rule", "nearest")  # files written before frame_rule existed used the paper's rule
    config = stored_settings(RFConfig, stored, name)
    specs = {"theta": Arr("float", ("L",)), "constant": Arr("float", (1,))}
    for n in LAYERS.get(config.encoding, ()):
        specs[f"{n}_W"] = Arr("float", (f"w_{n}", None))
        specs[f"{n}_b"] = Arr("float", (f"w_{n}",))
    check_arrays(arrays, specs, name)
    return config, train_system_of(header, arrays, name)
