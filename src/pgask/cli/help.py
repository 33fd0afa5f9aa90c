"""--help rendering: flags shown alone and values by name, never a Python type (Typer 0.29 prints
`<bool>` after each flag, `<list[Path]>`, `<float range>`)."""

from __future__ import annotations


import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption



class _HelpArgument(TyperArgument):
    """An argument in --help: its name in capitals (QUERY, PATHS...), no Python type beside it."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type_rich(self, ctx) -> str | None:
        return None


VALUE_NAMES = {"int": "N", "float": "NUMBER", "str": "TEXT", "Path": "PATH", "datetime": "DATE"}


class _HelpOption(TyperOption):
    """An option in --help: a flag stands alone, a value is named by its metavar, its choices
    ([vector|keyword|hybrid]) or a plain word (TEXT, N, PATH), never a Python type (<list[str]>)."""

    def display_type_rich(self, ctx) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).strip("<>")  # "int range", "list[str]", "vector|keyword|hybrid"
        if "|" in label:
            return f"[{label.removeprefix('list[').removesuffix(']')}]"
        many = label.startswith("list[")
        label = label.removeprefix("list[").removesuffix("]").removesuffix(" range")
        return VALUE_NAMES.get(label, label.upper()) + ("..." if many or self.nargs != 1 else "")


def _plain_help(params) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _HelpOption
        elif type(param) is TyperArgument:
            param.__class__ = _HelpArgument


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
