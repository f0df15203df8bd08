"""Configuration errors of the Trainer verbs on one line each: the key, the value given and what is accepted.

jsonargparse reports a bad value inside a ``class_path`` / ``init_args`` block as a nested "union dump" (every
alternative type it tried, ``Expected a <class 'NoneType'>``, ``Given value type: ...`` and the whole namespace);
:func:`summarize` reads that report and keeps what a researcher acts on, e.g.
``model.init_args.optimizer.init_args.lr = 'abc': expected float or torch.Tensor``. With the environment variable
``DERMLAB_VERBOSE=1`` (:func:`verbose`) the parser's own full report is printed instead.
:class:`DermlabArgumentParser` is the parser class of the suite's LightningCLI; :func:`instantiation_error` does the
same for a class that fails when it is built (an unknown backbone, a bad option a module checks itself).
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from lightning.pytorch.cli import ArgsType, LightningArgumentParser

from dermlab.errors import DataError

if TYPE_CHECKING:
    import argparse

    from jsonargparse import Namespace

VERBOSE_ENV = "DERMLAB_VERBOSE"
UNION = "Does not validate against any of the Union subtypes"
VERBS = ("fit", "validate", "test", "predict")
TIP_START = f"(set {VERBOSE_ENV}=1"
_IMPORT_FAILURES = ("has no attribute", "No module named", "Import path", "cannot import name")


def verbose() -> bool:
    """Whether ``DERMLAB_VERBOSE`` asks for the parser's full reports (any value but empty, 0, false, no, off)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def tip(argv: Sequence[str] = ()) -> str:
    """The line after the errors: how to see the full report and the options."""
    verb = next((f" {a}" for a in argv if a in VERBS), "")
    return f"{TIP_START} for the parser's full report; `dermlab{verb} --help` lists the options)"


def _type_name(text: str) -> str:
    """``<class 'int'>`` → ``int``; other type reprs as they are, without ``typing.``."""
    text = text.strip()
    match = re.fullmatch(r"<class '([\w.]+)'>", text)
    return match.group(1) if match else text.replace("typing.", "")


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [p for p in [*parts, text[start:].strip()] if p]


def accepted(types: Sequence[str]) -> str:
    """What a list of type reprs accepts, in words: ``None`` left out, Literal values merged into ``one of``."""
    values, others = [], []
    for text in types:
        name = _type_name(text)
        literal = re.fullmatch(r"Literal\[(.*)\]", name)
        if literal:
            values += [v for v in _split_top(literal.group(1)) if v not in values]
        elif name != "NoneType":
            others.append(name)
    words = ([f"one of {', '.join(values)}"] if values else []) + others
    return " or ".join(words) or "null"


def _subtypes(lines: list[str]) -> list[str]:
    line = next((x.strip() for x in lines if x.strip().startswith("Subtypes: [")), "")
    return _split_top(line[len("Subtypes: ["):-1]) if line else []


def _alternatives(lines: list[str]) -> list[str]:
    """The items under ``Errors:`` of a union report, each with its continuation lines (dedented)."""
    start = next((i for i, x in enumerate(lines) if x.strip() == "Errors:"), None)
    if start is None:
        return []
    items: list[list[str]] = []
    indent = None
    for line in lines[start + 1:]:
        stripped = line.lstrip()
        if not stripped:
            continue
        depth = len(line) - len(stripped)
        if indent is None:
            indent = depth
        if depth < indent or (depth == indent and not stripped.startswith("- ")):
            break
        if depth == indent:
            items.append([stripped[2:]])
        elif items:
            items[-1].append(line[indent + 2:] if len(line) > indent + 2 else "")
    return ["\n".join(item) for item in items]


def _given(lines: list[str]) -> str | None:
    """The value of a union report's ``Given value:`` line (a NestedArg's ``val``)."""
    line = next((x.strip() for x in lines if x.strip().startswith("Given value:")), None)
    if line is None:
        return None
    value = line[len("Given value:"):].strip().split(". Got value:")[0]
    nested = re.fullmatch(r"NestedArg\(key='.*?', val=(.*)\)", value)
    if nested:
        return nested.group(1).strip("'\"")
    return value


def _deeper(item: str) -> bool:
    return item.startswith(("Problem with given class_path", "Parser key", "Type ", "Option '")) or any(
        f in item for f in _IMPORT_FAILURES)


class _Error:
    """One error found in a report: the key path, the class whose arguments it sits in, the value and the reason."""

    def __init__(self) -> None:
        self.path: list[str] = []
        self.owner: str | None = None  # the class whose init_args the next key is in
        self.in_class = False  # a class_path was just read: the next key is under its init_args
        self.value: str | None = None
        self.value_at = 0  # the value is that of path[:value_at] (a yaml block: its entry at the rest of the path)
        self.reason = ""

    def _entry(self) -> object:
        """The value itself where :attr:`value` is the repr of a yaml block holding it (``{'init_args': ...}``)."""
        try:
            block = ast.literal_eval(self.value) if self.value.startswith("{") else None
        except (ValueError, SyntaxError):
            block = None
        for name in self.path[self.value_at:] if isinstance(block, dict) else ():
            if not isinstance(block, dict) or name not in block:
                return self.value
            block = block[name]
        return self.value if block is None else block

    def key(self) -> str:
        return ".".join(self.path)

    def line(self) -> str:
        value = "" if self.value is None else f" = {self._entry()!r}"
        return f"{self.key() or 'configuration'}{value}: {self.reason}"


def _walk(text: str, found: _Error) -> _Error:
    """Fill ``found`` from one (nested) jsonargparse report ``text``."""
    text = text.strip("\n")
    head = text.strip()
    lines = text.splitlines()
    parser_key = re.match(r'Parser key "([^"]+)":[ ]?', head)
    if parser_key:
        found.path += ["init_args"] * found.in_class + [parser_key.group(1)]
        found.in_class = False
        rest = head[parser_key.end():]
        return _walk(rest if rest.strip() else "\n".join(lines[1:]), found)
    body = [x for x in lines if x.strip() and not x.strip().startswith("- Expected a path but")]
    if body and body[0].strip().lstrip("- ").startswith(UNION):
        indent = len(body[0]) - len(body[0].lstrip())
        own = [x for x in body if len(x) - len(x.lstrip()) == indent]  # this union's lines, not its items'
        given = _given(own)
        if given is not None:
            found.value, found.value_at = given, len(found.path)
        items = _alternatives(body)
        deeper = [i for i in items if _deeper(i)]
        if deeper:
            return _walk(deeper[0], found)
        found.reason = f"expected {accepted(_subtypes(own))}"
        return found
    problem = re.match(r"Problem with given class_path '([^']+)':", head)
    if problem:
        body = head[problem.end():].strip()
        first = body.splitlines()[0].strip() if body else ""
        if any(f in first for f in _IMPORT_FAILURES):
            found.path.append("class_path")
            found.value, found.reason = problem.group(1), f"cannot be imported ({first})"
            return found
        found.owner, found.in_class = problem.group(1), True
        return _walk(body, found)
    callable_class = re.match(r"Type (.+?) expects a function or a callable class: ", head)
    if callable_class:
        body, _, got = head[callable_class.end():].partition(". Got value: ")
        owner = re.search(r"class_path='([^']+)'", got)
        if any(f in body.splitlines()[0] for f in _IMPORT_FAILURES):
            found.path.append("class_path")
            found.value = owner.group(1) if owner else found.value
            found.reason = f"cannot be imported ({body.strip()})"
            return found
        found.owner, found.in_class = (owner.group(1) if owner else found.owner), True
        return _walk(body, found)
    option = re.match(r"Option '([^']+)' is not accepted", head)
    if option:
        block = ".".join(found.path)
        found.path += ["init_args"] * found.in_class + [option.group(1)]
        found.reason = _unknown_argument(option.group(1), found.owner, block)
        return found
    expected = re.match(r"Expected a (.+?)\. Got value: (.*)", head, re.S)
    if expected:
        found.value = expected.group(2).strip().splitlines()[0]
        found.reason = f"expected {accepted([expected.group(1)])}"
        return found
    found.reason = head.splitlines()[0].strip() if head else "invalid value"
    return found


def _arguments_of(class_path: str | None) -> list[str]:
    """The parameter names of the class ``class_path`` (empty if it cannot be imported)."""
    if not class_path or "." not in class_path:
        return []
    module, _, name = class_path.rpartition(".")
    try:
        signature = inspect.signature(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _unknown_argument(name: str, owner: str | None, block: str) -> str:
    """Why ``name`` is refused: not an argument of ``owner`` (configured at key ``block``), with the closest ones
    and the option that lists them all."""
    if owner is None:
        return "not an accepted option"
    close = difflib.get_close_matches(name, _arguments_of(owner), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    listing = f"--{block}.help {owner} lists them" if block else "its arguments are in its docstring"
    return f"not an argument of {owner} ({hint}{listing})"


def _unrecognized(message: str, options: Sequence[str]) -> str:
    """``unrecognized arguments: --x 1`` with the closest options named."""
    given = [a.split("=")[0] for a in message.split(":", 1)[1].split() if a.startswith("--")]
    close = [m for a in given for m in difflib.get_close_matches(a, options, n=2, cutoff=0.75)]
    return message + (f" (did you mean {' or '.join(dict.fromkeys(close))}?)" if close else "")


def summarize(message: str, argv: Sequence[str] = (), options: Sequence[str] = ()) -> list[str]:
    """One line per error of jsonargparse's error ``message``: ``key = 'value': what is accepted``.

    ``argv`` (the command line) fills in a value argparse leaves out (``--trainer.max_epochs -x`` reads ``-x`` as an
    option); ``options`` (the parser's option strings) give the nearest names for an unrecognized one. A message
    that is not a nested report is kept as it is.
    """
    message = message.strip()
    missing = re.fullmatch(r"argument (--[\w.]+): expected one argument", message)
    if missing:
        args = list(argv)
        after = args[args.index(missing.group(1)) + 1] if missing.group(1) in args[:-1] else None
        if after is not None and after.startswith("-"):
            return [f"{missing.group(1)} = {after!r}: a value starting with '-' is read as an option; write "
                    f"{missing.group(1)}={after}"]
        return [message]
    if message.startswith("unrecognized arguments:"):
        return [_unrecognized(message, options)]
    if not message.startswith("Parser key") and UNION not in message:
        return [message.splitlines()[0]]
    found = _walk(message, _Error())
    if found.value is None:
        found.value = _from_argv(found.key(), argv)
    return [found.line()]


def _from_argv(key: str, argv: Sequence[str]) -> str | None:
    """The value given to ``--key`` on the command line, if it was given there."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == f"--{key}" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"--{key}="):
            return arg.split("=", 1)[1]
    return None


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and of its subcommands' parsers."""
    names = list(parser._option_string_actions)
    action = getattr(parser, "_subcommands_action", None)
    for sub in (action.choices.values() if action is not None else ()):
        names += list(sub._option_string_actions)
    return names


def remember_argv(parser: LightningArgumentParser, args: ArgsType) -> None:
    """Keep the command line of this parse (``args``; ``None``: ``sys.argv``) on ``parser`` and its subcommands'
    parsers, for :func:`summarize` to name a value the parser's message leaves out."""
    argv = list(args) if isinstance(args, list | tuple) else sys.argv[1:] if args is None else []
    action = getattr(parser, "_subcommands_action", None)
    for each in [parser, *(action.choices.values() if action is not None else ())]:
        each.argv = argv


class DermlabArgumentParser(LightningArgumentParser):
    """LightningCLI's parser whose errors are one line each (:func:`summarize`) instead of the usage text and the
    union dump; ``DERMLAB_VERBOSE=1`` restores jsonargparse's report. Exits with status 2, as argparse does."""

    argv: Sequence[str] | None = None  # set per parse by the CLI, for summarize()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # argparse would take an unambiguous prefix of an option (--trainer.max_epoch for --trainer.max_epochs)
        # silently: a misspelt key must stop instead, as it does in a -c yaml
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print the one-line summary of ``message`` and exit with status 2 (with ``DERMLAB_VERBOSE=1``, or when the
        parser must raise instead of exiting, jsonargparse's own behaviour)."""
        from jsonargparse._common import debug_mode_active

        if not self.exit_on_error or debug_mode_active() or verbose():
            super().error(message, ex)
        self._logger.error(message)
        argv = self.argv if self.argv is not None else sys.argv[1:]
        try:
            lines = summarize(message, argv, _option_strings(self))
        except Exception:  # a report shaped as never seen: its first line rather than a traceback
            lines = [message.strip().splitlines()[0] if message.strip() else "invalid arguments"]
        for line in lines:
            sys.stderr.write(f"dermlab: error: {line}\n")
        sys.stderr.write(tip(argv) + "\n")
        self.exit(2)


def instantiation_error(error: Exception, config: Namespace | None = None) -> Exception:
    """The error to show for ``error`` raised while LightningCLI built the configured classes: the original
    :class:`~dermlab.errors.DataError` where a class raised one, else a DataError naming the key (``model``, ``data``,
    found in ``config``), the class, the reason (the cause of jsonargparse's union dump, the class's own exception)
    and the argument whose value the reason quotes. Anything else is returned as it is."""
    cause = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, DataError):
        return cause
    text = str(error)
    if UNION not in text:
        return error
    match = re.search(r"class_path='([^']+)'", text)
    owner = match.group(1) if match else None
    key = next((k for k in ("model", "data") if config is not None and owner is not None
                and getattr(config.get(k), "class_path", None) == owner), None)
    reason = str(cause).strip().splitlines()[0] if cause is not error else _walk(text, _Error()).reason
    where = f"{key} ({owner})" if key else owner or "a configured class"
    quoted = next((f" ({key or 'its'}.init_args.{name} = {value!r})" for name, value in
                   re.findall(r"(\w+)='([^']+)'", text.split("init_args=", 1)[-1])
                   if re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", reason)), "")
    return DataError(f"{where} could not be built from the configuration: {reason}{quoted}. {tip(sys.argv[1:])}")
