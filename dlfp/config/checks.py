"""Value constraints declared beside the schema fields, checked once after composition and before
any data is loaded.

The schemas' types catch a misspelled key or a value of the wrong type while Hydra composes; the
constraints here catch values of the right type that cannot work: a negative lr, a zero batch, a
patch that does not tile the image, a key added with Hydra's ``+`` that nothing reads. A field
declares its range with ``limit(default, ge=..., gt=..., le=..., lt=...)`` (for a list, every
element); a float must also be finite (no inf, no nan) unless its field says ``finite=False``. A
schema declares relations between its keys in ``RULES``. A list of named entries (the transforms)
declares the schema of each name's options with ``choices``; the command-line tools read their
flags with ``option_type``, so a flag and the config key it stands for share one range.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, NoReturn

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ValidationError

from dlfp.errors import DlfpError

SEED = {"ge": 0, "lt": 2**63}  # the range of a seed that Python, NumPy and torch all accept: limit(0, **SEED)
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "ge": lambda v, b: v >= b, "gt": lambda v, b: v > b, "le": lambda v, b: v <= b, "lt": lambda v, b: v < b,
}


def limit(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None,
          finite: bool = True, **bounds: float) -> Any:
    """A dataclass field whose value (each element of a list) must satisfy ``bounds``
    (``ge``, ``gt``, ``le``, ``lt``); null passes, for fields that may be null. ``finite=False``
    lets a float be inf or nan (every other float field refuses them)."""
    unknown = set(bounds) - set(_BOUNDS)
    if unknown:
        raise TypeError(f"unknown bounds {sorted(unknown)}")
    metadata = {"bounds": bounds, "finite": finite}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def choices(registry: dict[str, type], what: str) -> Any:
    """A list field of entries chosen by name from ``registry``: each a name or a mapping with
    ``name`` and options, the options typed and limited by ``registry[name]`` (a schema)."""
    return dataclasses.field(default_factory=list, metadata={"choices": registry, "what": what})


def choice(registry: dict[str, type], what: str) -> Any:
    """One such entry, or null (the default)."""
    return dataclasses.field(default=None, metadata={"choices": registry, "what": what})


def entries(schema: type, what: str) -> Any:
    """A list field of mappings, each typed and limited by ``schema`` (nested mappings by their
    fields' schemas). Left untyped for Hydra, so that a misspelled key is one line naming the entry."""
    return dataclasses.field(default_factory=list, metadata={"entries": schema, "what": what})


@dataclasses.dataclass(frozen=True)
class Rule:
    """A relation between keys of one schema: ``check(*values)`` must hold; ``says`` what it asks."""

    keys: Sequence[str]
    check: Callable[..., bool]
    says: str


def validate(cfg: DictConfig) -> None:
    """Raise one DlfpError listing every value of ``cfg`` that breaks its schema's constraints."""
    problems = config_problems(cfg)
    if problems:
        raise DlfpError("; ".join(problems))


def config_problems(cfg: DictConfig) -> list[str]:
    problems: list[str] = []
    _check_node(cfg, "", problems)
    return problems


def read_entry(entry: Any, registry: dict[str, type], path: str, what: str) -> tuple[str, Any]:
    """An entry of a ``choices`` list (a name, or a mapping with ``name`` and options) as its name
    and its options (an instance of ``registry[name]``); one DlfpError lists every problem."""
    name, options, problems = _read_entry(entry, registry, path, what)
    if problems:
        raise DlfpError("; ".join(problems))
    return name, options


def read_mapping(entry: Any, schema: type, path: str, what: str) -> Any:
    """An entry of an ``entries`` list as an instance of ``schema``; one DlfpError lists every problem."""
    node, problems = _checked_mapping(entry, schema, path, what)
    if problems:
        raise DlfpError("; ".join(problems))
    return OmegaConf.to_object(node)


def option_type(schema: type, name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` that reads a flag as the config reads ``schema``'s field ``name`` (for
    a list field: one element; ``null`` where the field may be null) and holds it to the field's
    declared range."""
    spec = _fields(schema)[name]

    def read(text: str) -> Any:
        node = OmegaConf.structured(schema)
        listed = isinstance(node[name], ListConfig)
        value = None if text == "null" else text  # as Hydra reads it on the command line
        try:
            node[name] = [value] if listed else value
        except ValidationError:
            raise argparse.ArgumentTypeError(f"{text} must be {_expected(schema, name)}") from None
        value = node[name][0] if listed else node[name]
        problem = _value_problem(value, spec)
        if problem:
            raise argparse.ArgumentTypeError(f"{text} {problem}")
        return value

    read.__name__ = name  # argparse names the type in its messages
    return read


class ToolParser(argparse.ArgumentParser):
    """argparse for the command-line tools, failing as the rest of dlfp does: one ``error:`` line
    and exit 1 (instead of argparse's usage block and exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {message}; see {self.prog} --help\n")


def _fields(schema: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(schema)}


def _check_node(node: DictConfig, path: str, problems: list[str]) -> None:
    schema = OmegaConf.get_type(node)
    fields = _fields(schema) if dataclasses.is_dataclass(schema) else {}
    if fields:
        for key in node.keys():
            if key not in fields and path:  # the root's sections are the scope check's (config/scope.py)
                problems.append(f"{path}{key} is not a setting of {path.rstrip('.') or 'the config'} "
                                f"(known: {', '.join(sorted(k for k in fields if not k.startswith('_')))}); "
                                f"remove it")
        for name, spec in fields.items():
            if _checked(node, name, spec):
                problems.extend(_field_problems(node[name], spec, f"{path}{name}"))
        for rule in getattr(schema, "RULES", ()):
            values = [node[key] for key in rule.keys]
            if not rule.check(*values):
                shown = ", ".join(f"{path}{k}={_shown(v)}" for k, v in zip(rule.keys, values))
                problems.append(f"{shown}: {rule.says}")
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            _check_node(child, f"{path}{key}.", problems)


def _checked(node: DictConfig, name: str, spec: dataclasses.Field) -> bool:
    """Whether a field's value is checked: set, and (unless it declares a range) not an
    interpolation, which may name what only a run resolves (``${hydra:...}``)."""
    if name not in node or OmegaConf.is_missing(node, name):
        return False
    return bool(spec.metadata) or not OmegaConf.is_interpolation(node, name)


def _field_problems(value: Any, spec: dataclasses.Field, key: str) -> list[str]:
    if "choices" in spec.metadata and isinstance(value, ListConfig):
        return [problem for i, entry in enumerate(value)
                for problem in _read_entry(entry, spec.metadata["choices"], f"{key}[{i}]",
                                           spec.metadata["what"])[2]]
    if "choices" in spec.metadata and value is not None:
        return _read_entry(value, spec.metadata["choices"], key, spec.metadata["what"])[2]
    if "entries" in spec.metadata and isinstance(value, ListConfig):
        return [problem for i, entry in enumerate(value)
                for problem in _checked_mapping(entry, spec.metadata["entries"], f"{key}[{i}]",
                                                spec.metadata["what"])[1]]
    problem = _value_problem(value, spec)
    return [f"{key}={_shown(value)} {problem}"] if problem else []


def _checked_mapping(entry: Any, schema: type, path: str, what: str) -> tuple[DictConfig | None, list[str]]:
    """``entry`` (a mapping) typed by ``schema`` and checked against its limits and rules."""
    entry = _plain(entry)
    if not isinstance(entry, dict):
        return None, [f"{path}={_shown(entry)} is no {what}; write a mapping of its settings "
                      f"({', '.join(_settings(schema))})"]
    node, problems = _read_mapping(entry, schema, path, f"a setting of a {what}")
    if not problems:
        _check_node(node, f"{path}.", problems)
    return node, problems


def _plain(entry: Any) -> Any:
    """A config node as plain Python (dicts, lists), anything else as it is."""
    if isinstance(entry, (DictConfig, ListConfig)):
        return OmegaConf.to_container(entry, resolve=True)
    return entry


def _settings(schema: type) -> list[str]:
    return [name for name in _fields(schema) if not name.startswith("_")]


def _read_mapping(options: dict, schema: type, path: str, owner: str) -> tuple[DictConfig, list[str]]:
    """``options`` typed by ``schema`` (a mapping for a dataclass field: by that field's schema)
    into a node; the problems name each key under ``path``, a key the schema lacks as not ``owner``."""
    fields, node, problems = _fields(schema), OmegaConf.structured(schema), []
    hints = typing.get_type_hints(schema)
    for key, value in options.items():
        if key not in fields:
            problems.append(f"{path}.{key} is not {owner} (known: {', '.join(_settings(schema))}); remove it")
            continue
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            value, more = _read_mapping(value, hints[key], f"{path}.{key}", f"a setting of {path}.{key}")
            problems += more
            if more:
                continue
        try:
            node[key] = value
        except ValidationError:
            problems.append(f"{path}.{key}={_shown(value)} must be {_expected(schema, key)}")
    return node, problems


def _read_entry(entry: Any, registry: dict[str, type], path: str, what: str
                ) -> tuple[str, Any, list[str]]:
    entry = _plain(entry)
    options = {"name": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else {}
    name = options.pop("name", None)
    if name not in registry:
        known = ", ".join(registry)
        if name is None:
            return "", None, [f"{path}={_shown(entry)} names no {what}; write a name ({known}) or "
                              f"{{name: <{what}>, <option>: <value>}}"]
        return "", None, [f"{path} has {name!r}, which is not a {what}; known: {known}"]
    node, problems = _read_mapping(options, registry[name], path, f"an option of {name}")
    if not problems:
        _check_node(node, f"{path}.", problems)
    return name, None if problems else OmegaConf.to_object(node), problems


def _value_problem(value: Any, spec: dataclasses.Field) -> str | None:
    """What a value (each element of a list) breaks of its field's range, or None."""
    bounds, finite = spec.metadata.get("bounds", {}), spec.metadata.get("finite", True)
    is_list = isinstance(value, (list, ListConfig))
    numbers = [v for v in (value if is_list else [value]) if _is_number(v)]
    infinite = finite and any(not math.isfinite(v) for v in numbers)
    if not infinite and all(_TESTS[name](v, bound) for v in numbers for name, bound in bounds.items()):
        return None
    wanted = _range(bounds)
    if infinite:
        wanted = f"finite numbers {wanted}" if is_list else f"a finite number {wanted}"
    return f"must {'all ' if is_list else ''}be {wanted.strip()}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range(bounds: dict[str, float]) -> str:
    return " and ".join(f"{_BOUNDS[name]} {bound}" for name, bound in bounds.items())


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _expected(schema: type, name: str) -> str:
    """What a field holds, in words: "an integer >= 0", "one of constant, reflect"."""
    kind = typing.get_type_hints(schema)[name]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    nullable = len(args) < len(typing.get_args(kind))
    if nullable and len(args) == 1:
        kind = args[0]
    if typing.get_origin(kind) in (list, tuple):
        kind = typing.get_args(kind)[0]
        prefix = "a list of "
    else:
        prefix = ""
    if isinstance(kind, type) and issubclass(kind, Enum):
        words = "one of " + ", ".join(m.name for m in kind)
    else:
        words = _KINDS.get(kind, str(kind))
    bounds = _fields(schema)[name].metadata.get("bounds", {})
    return f"{prefix}{words} {_range(bounds)}".strip() + (" or null" if nullable else "")


def _shown(value: Any) -> str:
    if isinstance(value, (ListConfig, DictConfig)):
        return str(OmegaConf.to_container(value))
    return str(value)
