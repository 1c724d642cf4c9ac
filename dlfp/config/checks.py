"""Value constraints declared beside the schema fields, checked once after composition and before
any data is loaded.

The schemas' types catch a misspelled key or a value of the wrong type while Hydra composes; the
constraints here catch values of the right type that cannot work: a negative lr, a zero batch, a
patch that does not tile the image, a key added with Hydra's ``+`` that nothing reads. A field
declares its range with ``limit(default, ge=..., gt=..., le=..., lt=...)`` (for a list, every
element); a schema declares relations between its keys in ``RULES``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlfp.errors import DlfpError

_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "ge": lambda v, b: v >= b, "gt": lambda v, b: v > b, "le": lambda v, b: v <= b, "lt": lambda v, b: v < b,
}


def limit(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None,
          **bounds: float) -> Any:
    """A dataclass field whose value (each element of a list) must satisfy ``bounds``
    (``ge``, ``gt``, ``le``, ``lt``); null passes, for fields that may be null."""
    unknown = set(bounds) - set(_BOUNDS)
    if unknown:
        raise TypeError(f"unknown bounds {sorted(unknown)}")
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"bounds": bounds})
    return dataclasses.field(default=default, metadata={"bounds": bounds})


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


def _check_node(node: DictConfig, path: str, problems: list[str]) -> None:
    schema = OmegaConf.get_type(node)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    if fields:
        for key in node.keys():
            if key not in fields:
                problems.append(f"{path}{key} is not a setting of {path.rstrip('.') or 'the config'} "
                                f"(known: {', '.join(sorted(k for k in fields if not k.startswith('_')))}); "
                                f"remove it")
        for name, spec in fields.items():
            bounds = spec.metadata.get("bounds")
            if bounds and name in node:
                problem = _out_of_bounds(node[name], bounds)
                if problem:
                    problems.append(f"{path}{name}={_shown(node[name])} {problem}")
        for rule in getattr(schema, "RULES", ()):
            values = [node[key] for key in rule.keys]
            if not rule.check(*values):
                shown = ", ".join(f"{path}{k}={_shown(v)}" for k, v in zip(rule.keys, values))
                problems.append(f"{shown}: {rule.says}")
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            _check_node(child, f"{path}{key}.", problems)


def _out_of_bounds(value: Any, bounds: dict[str, float]) -> str | None:
    is_list = isinstance(value, (list, ListConfig))
    items = list(value) if is_list else [value]
    def ok(item: Any) -> bool:
        return item is None or all(_TESTS[name](item, bound) for name, bound in bounds.items())

    if all(ok(item) for item in items):
        return None
    wanted = " and ".join(f"{_BOUNDS[name]} {bound}" for name, bound in bounds.items())
    return f"must {'all ' if is_list else ''}be {wanted}"


def _shown(value: Any) -> str:
    if isinstance(value, (ListConfig, DictConfig)):
        return str(OmegaConf.to_container(value))
    return str(getattr(value, "value", value))
