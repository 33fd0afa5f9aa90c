"""--help rendering: flags shown alone and values by name, never a type name (Typer prints `<str>`
after a value option, `<path>` beside an argument, `<cosine|l2|ip>` for choices).

Typer is held below 0.29 (pyproject.toml): 0.29 coerces values through pydantic, whose import costs
every CLI call about 0.15 s, a quarter of `pgask status` (docs/design.md, --help rendering)."""

from __future__ import annotations

import copy

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

VALUE_NAMES = {"int": "N", "integer": "N", "float": "NUMBER", "str": "TEXT", "text": "TEXT", "path": "PATH",
               "datetime": "DATE"}


def _value_name(param) -> str:
    """TEXT, N, PATH, [vector|keyword|hybrid]: what a value option takes, in a word."""
    choices = getattr(param.type, "choices", None)
    if choices:
        return f"[{'|'.join(str(c) for c in choices)}]"
    name = param.type.name.removesuffix(" range")  # "integer range", "float range"
    return VALUE_NAMES.get(name, name.upper()) + ("..." if param.multiple or param.nargs != 1 else "")


class _HelpOption(TyperOption):
    """An option in --help: a flag stands alone, a value is named by its metavar, its choices or a
    plain word (TEXT, N, PATH)."""

    def make_metavar(self, ctx) -> str:
        if self.is_flag:
            return ""
        return self.metavar if self.metavar is not None else _value_name(self)


class _NoTypeName:
    """An argument's type, as --help shows it beside the argument's name: not at all."""

    def get_metavar(self, param, ctx) -> str:
        return ""


def _plain_help(params) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _HelpOption
        elif type(param) is TyperArgument and not isinstance(param.type, _NoTypeName):
            # QUERY, PATHS..., as the help texts name them
            param.metavar = param.metavar or (param.name or "").upper() + ("..." if param.nargs != 1 else "")
            # a copy of the type that names nothing; its conversion is the type's own
            shown = copy.copy(param.type)
            shown.__class__ = type(f"Unnamed{type(shown).__name__}", (_NoTypeName, type(shown)), {})
            param.type = shown


class _PlainHelp:
    """For a command or group: its parameters, and its help option, print without type names."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self.params)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        _plain_help([option] if option is not None else [])
        return option


class _Command(_PlainHelp, TyperCommand):
    pass


class _Group(_PlainHelp, TyperGroup):
    pass


class _Typer(typer.Typer):
    """Typer whose commands show flags as flags and values by name in --help (see _HelpOption)."""

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or _Command, **kwargs)
