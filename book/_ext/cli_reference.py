"""Sphinx directive `cli-reference`: the command-line reference, written from `skinlib.cli.build_parser()`.

The page is generated at build time from the parser that `skinlib` itself runs, so a new sub-command, option,
help text or default shows up in the book without anyone retyping it. The pure functions (`describe_parser`,
`overview_markdown`, `command_markdown`, `reference_markdown`) need no Sphinx and are tested on their own
(tests/test_docs_pages.py); the directive only turns their Markdown into document nodes.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

#: The width usage lines are wrapped at: fixed, so the page does not depend on the terminal that built it.
USAGE_WIDTH = 100


@dataclass
class Option:
    """One argument of a command, as the reference shows it."""

    invocation: str  # "--tta-scales S [S ...]" or "IMAGE [IMAGE ...]"
    help: str
    default: str | None
    required: bool
    positional: bool


@dataclass
class Command:
    """One (sub-)command: its name, what `skinlib --help` says about it, its usage and its arguments."""

    name: str  # "predict"; "" for `skinlib` itself
    prog: str  # "skinlib predict"
    summary: str
    description: str
    usage: str
    options: list[Option] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The cross-reference label of its section, e.g. `cli-predict`."""
        return "cli-" + (self.name.replace(" ", "-") or "skinlib")


# ------------------------------------------------------------------------------------------- the parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=USAGE_WIDTH)


def _usage(parser: argparse.ArgumentParser) -> str:
    """argparse's own usage line, wrapped at a fixed width."""
    formatter = _formatter(parser.prog)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="usage: ")
    return formatter.format_help().strip()


def _expand_help(action: argparse.Action, prog: str) -> str:
    """The help text with argparse's `%(default)s`-style fields filled in, as `--help` prints it."""
    if not action.help:
        return ""
    params = {key: value for key, value in vars(action).items() if value is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(choice) for choice in params["choices"])
    try:
        return " ".join((action.help % params).split())
    except (KeyError, TypeError, ValueError):
        return " ".join(action.help.split())


def _invocation(action: argparse.Action, prog: str) -> str:
    """How the argument is written on the command line: `--out DIR`, `--tta`, `IMAGE [IMAGE ...]`."""
    formatter = _formatter(prog)
    if not action.option_strings:
        return formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    return f"{names} {formatter._format_args(action, formatter._get_default_metavar_for_optional(action))}"


def _default(action: argparse.Action, help_text: str) -> str | None:
    """The default worth stating: none for flags, for unset values, or when the help already says it."""
    value = action.default
    if action.nargs == 0 or action.required or value is None or value is argparse.SUPPRESS:
        return None
    if "default" in help_text.lower():
        return None
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    return str(value)


def _options(parser: argparse.ArgumentParser) -> list[Option]:
    options = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        help_text = _expand_help(action, parser.prog)
        options.append(
            Option(
                invocation=_invocation(action, parser.prog),
                help=help_text,
                default=_default(action, help_text),
                required=bool(action.required),
                positional=not action.option_strings,
            )
        )
    return options


def _command(parser: argparse.ArgumentParser, name: str, summary: str) -> Command:
    description = " ".join((parser.description or "").split())
    return Command(
        name=name,
        prog=parser.prog,
        summary=summary,
        description=description,
        usage=_usage(parser),
        options=_options(parser),
    )


def describe_parser(parser: argparse.ArgumentParser, name: str = "", summary: str = "") -> list[Command]:
    """The parser and every sub-command below it, depth first, in the order `--help` lists them."""
    commands = [_command(parser, name, summary)]
    for action in _subparsers(parser):
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen = set()
        for sub_name, sub_parser in action.choices.items():
            if id(sub_parser) in seen:  # an alias of a command already listed
                continue
            seen.add(id(sub_parser))
            full_name = f"{name} {sub_name}".strip()
            commands += describe_parser(sub_parser, full_name, " ".join(helps.get(sub_name, "").split()))
    return commands


# -------------------------------------------------------------------------------------------- Markdown

_CODE_SPAN = re.compile(r"(`[^`]*`)")
_MARKDOWN_SPECIAL = re.compile(r"([\\*_<>\[\]$|#])")
#: An option named in running text, e.g. "with --tta": set as code, so typography cannot turn -- into a dash.
_OPTION_MENTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def escape_markdown(text: str) -> str:
    """Help text as literal Markdown: special characters escaped, code spans kept, options set as code."""
    parts = _CODE_SPAN.split(text)
    return "".join(part if part.startswith("`") else _escape_plain(part) for part in parts)


def _escape_plain(text: str) -> str:
    pieces = _OPTION_MENTION.split(text)  # odd positions are option names
    return "".join(
        f"`{piece}`" if index % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", piece) for index, piece in enumerate(pieces)
    )


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def option_markdown(option: Option) -> str:
    """One bullet: the invocation as code, then what `--help` says, the default, and whether it is required."""
    notes = []
    if option.required and not option.positional:
        notes.append("required")
    said = [escape_markdown(_sentence(option.help))] if option.help else []
    if option.default is not None:
        said.append(f"Default: `{option.default}`.")
    line = f"- `{option.invocation}`" + (f" ({', '.join(notes)})" if notes else "")
    return line + (": " + " ".join(said) if said else "")


def command_markdown(command: Command) -> str:
    """The body of one command's section (no heading): summary, description, usage, then the arguments."""
    parts = []
    if command.summary:
        parts.append(escape_markdown(_sentence(command.summary)))
    if command.description and command.description.rstrip(".") != command.summary.rstrip("."):
        parts.append(escape_markdown(_sentence(command.description)))
    parts.append(f"```text\n{command.usage}\n```")
    positionals = [option_markdown(option) for option in command.options if option.positional]
    optionals = [option_markdown(option) for option in command.options if not option.positional]
    if positionals:
        parts.append("Arguments:\n\n" + "\n".join(positionals))
    if optionals:
        parts.append("Options:\n\n" + "\n".join(optionals))
    return "\n\n".join(parts) + "\n"


def overview_markdown(commands: list[Command]) -> str:
    """A list of the sub-commands, each linked to its section, with its one-line summary."""
    lines = []
    for command in commands:
        if not command.name:
            continue
        summary = escape_markdown(command.summary) if command.summary else ""
        lines.append(f"- {{ref}}`skinlib {command.name} <{command.label}>`" + (f": {summary}" if summary else ""))
    return "\n".join(lines) + "\n"


def reference_markdown(parser: argparse.ArgumentParser) -> str:
    """The whole reference as one Markdown text: overview, then a `##` section per command."""
    commands = describe_parser(parser)
    parts = [overview_markdown(commands)]
    for command in commands:
        parts.append(f"({command.label})=\n## `{command.prog}`\n\n{command_markdown(command)}")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------- Sphinx


def _markdown_nodes(directive, text: str) -> list:
    """Parse Markdown with the page's own (MyST) parser, so roles, code spans and fences work as written."""
    from docutils import nodes
    from docutils.statemachine import StringList

    holder = nodes.container()
    directive.state.nested_parse(
        StringList(text.splitlines(), source="cli-reference"), directive.content_offset, holder
    )
    return list(holder.children)


def source_files(parser: argparse.ArgumentParser) -> set[str]:
    """The modules that define the parser and its commands' handlers: the page depends on them."""
    import sys

    files: set[str] = set()
    stack = [parser]
    while stack:
        current = stack.pop()
        handler = current._defaults.get("func")
        if handler is not None and getattr(sys.modules.get(handler.__module__), "__file__", None):
            files.add(sys.modules[handler.__module__].__file__)
        for action in _subparsers(current):
            stack.extend(action.choices.values())
    return files


def _section(directive, command: Command):
    """A real section, with a title and a label, so the page's contents and `{ref}` links find it."""
    from docutils import nodes

    section = nodes.section(names=[command.label])
    section += nodes.title("", "", nodes.literal(text=command.prog))
    directive.state.document.note_explicit_target(section, section)
    section.extend(_markdown_nodes(directive, command_markdown(command)))
    return section


def _directive_class():
    from sphinx.util.docutils import SphinxDirective

    class CliReference(SphinxDirective):
        """`{cli-reference}`: an overview list, then one section per command. Put it last on its page."""

        has_content = False

        def run(self):
            import skinlib.cli
            from skinlib.cli import build_parser

            parser = build_parser()
            for path in source_files(parser) | {skinlib.cli.__file__, __file__}:
                self.env.note_dependency(path)
            commands = describe_parser(parser)
            result = _markdown_nodes(self, overview_markdown(commands))
            return result + [_section(self, command) for command in commands]

    return CliReference


def setup(app):
    """Register the directive (the page is reread when a module behind the parser changes: see `run`)."""
    from book_sources import use_checkout

    use_checkout(app.srcdir)
    app.add_directive("cli-reference", _directive_class())
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
