"""Shared behaviour of the settings dataclasses (``RFConfig``, ``BaselineConfig``):
a plain dict round trip with clear errors for unknown names, validated copies,
and each setting's help text and choices.

A setting is declared with :func:`setting`, which keeps its help text (and,
for a setting with a fixed set of values, the choices) in the dataclass
field's metadata; the command line, the studio's forms and their tooltips
read them from there (:meth:`SettingsMixin.help_texts`,
:meth:`SettingsMixin.choice_lists`), so every setting is described once.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, ClassVar, Iterable

from .errors import HGNError


def setting(default: Any = dataclasses.MISSING, help: str = "", choices: Iterable[str] | None = None, *,
            default_factory: Callable[[], Any] | None = None):
    """A dataclass field with its help text and optional choices in the
    field's metadata (``{"help": ..., "choices": (...)}``)."""
    metadata = {"help": " ".join(help.split())}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


#: values a settings dict holds as they are (immutable)
_PLAIN = (bool, int, float, str, type(None))


class _SettingsMeta(type):
    """Makes a call with a wrong parameter list (an unknown name, too many
    values) an HGNError naming the known settings, like :meth:`SettingsMixin.from_dict`,
    instead of the dataclass ``__init__``'s TypeError."""

    def __call__(cls, *args, **kwargs):
        sig = cls.__dict__.get("_init_signature")
        if sig is None:  # once per class: inspect.signature took 0.2 ms a call (a sweep makes thousands)
            sig = inspect.signature(cls.__init__)
            type.__setattr__(cls, "_init_signature", sig)
        try:
            sig.bind(None, *args, **kwargs)
        except TypeError as exc:
            names = ", ".join(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ""
            raise HGNError(f"{cls.label}s: {exc}; known are: {names}") from None
        return super().__call__(*args, **kwargs)


class SettingsMixin(metaclass=_SettingsMeta):
    """Mix into a dataclass whose ``__post_init__`` validates its fields.

    ``label`` names one setting in messages ("RF-HGN setting"). A call with
    a wrong parameter list raises HGNError (see ``_SettingsMeta``).
    """

    label: ClassVar[str] = "setting"

    def to_dict(self) -> dict:
        # settings of plain values (the usual case) as they are; dataclasses.asdict's deep copy of every
        # field is kept for the others (lists, nested settings)
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if all(isinstance(v, _PLAIN) for v in values.values()):
            return values
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise HGNError(f"{cls.label}s must be a mapping of names to values, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(map(str, d)) - names)
        if unknown:
            raise HGNError(f"unknown {cls.label}(s): {', '.join(map(str, unknown))}; "
                           f"known are: {', '.join(sorted(names))}")
        return cls(**d)

    @classmethod
    def help_texts(cls) -> dict[str, str]:
        """Help text of every setting that has one (from the fields' metadata)."""
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls) if f.metadata.get("help")}

    @classmethod
    def choice_lists(cls) -> dict[str, list]:
        """The allowed values of every setting that has a fixed set of them."""
        return {f.name: list(f.metadata["choices"]) for f in dataclasses.fields(cls) if "choices" in f.metadata}

    @classmethod
    def checked(cls, config=None):
        """The settings a job runs with: None -> the defaults; anything but
        an instance of ``cls``, or invalid settings: HGNError."""
        config = cls() if config is None else config
        if not isinstance(config, cls):
            article = "an" if cls.__name__[:1] in "AEIOUR" else "a"  # an RFConfig, a BaselineConfig
            raise HGNError(f"config must be {article} {cls.__name__}, got {type(config).__name__}")
        config.validate()
        return config

    def replace(self, **changes):
        """A validated copy with some settings changed."""
        d = self.to_dict()
        d.update(changes)
        return type(self).from_dict(d)
