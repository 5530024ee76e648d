"""YAML text to the raw tree, keeping the file and line of every value."""

from __future__ import annotations

import yaml

from dockyard.config.tree import ConfigError, KeyPath, Leaf, Map, Node, Seq, at, fail, key_path


class YamlReader:
    """Turns one YAML document into a raw tree, keeping where each value came from."""

    _MERGE = "tag:yaml.org,2002:merge"

    def __init__(self, source: str, env: bool, warnings: list[str]) -> None:
        self.source, self.env, self.warnings = source, env, warnings
        self.constructor = yaml.constructor.SafeConstructor()
        self.active: set[int] = set()

    def where(self, mark: yaml.Mark | None) -> str:
        if self.env:
            return f"from {self.source}"
        if not self.source or mark is None:
            return ""
        return f"{self.source}, line {mark.line + 1}"

    def read(self, text: str) -> Node | None:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            place = ", ".join(p for p in (self.source, line) if p)
            what = f"{self.source}: malformed YAML" if self.env else f"malformed YAML{at(place)}"
            problem = " ".join(p for p in (exc.context, exc.problem) if p)
            raise ConfigError(f"{what}: {problem}" if problem else what) from None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"malformed YAML in {self.source or 'configuration'}: {exc}"
            ) from None
        finally:
            loader.dispose()
        return None if node is None else self.convert(node, (), self.where(node.start_mark))

    def convert(self, node: yaml.Node, path: KeyPath, where: str) -> Node:
        if id(node) in self.active:
            raise ConfigError(
                f"{key_path(path) or 'configuration'}: recursive YAML alias{at(where)}"
            )
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.constructor.construct_object(node)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                raise ConfigError(
                    f"{key_path(path)}: {problem}{at(where)}", key_path(path)
                ) from None
            return Leaf(value, str(node.value), where)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return Seq(
                    [
                        self.convert(item, (*path, i), self.where(item.start_mark))
                        for i, item in enumerate(node.value)
                    ],
                    where,
                )
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path, where)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: KeyPath, where: str) -> Map:
        items: dict[str, Node] = {}
        merged: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_where = self.where(key_node.start_mark)
            if key_node.tag == self._MERGE:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    sub = self.convert(source, path, key_where)
                    if not isinstance(sub, Map):
                        raise fail(path, sub, "a << merge key takes mappings only")
                    for k, v in sub.items.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise fail(path, Leaf(None, "", key_where), "keys must be plain scalars")
            key = str(key_node.value)
            if key in items:
                self.warnings.append(
                    f'duplicate configuration key "{key_path((*path, key))}"{at(key_where)}: '
                    "the last value wins"
                )
            items[key] = self.convert(value_node, (*path, key), key_where)
        for k, v in merged.items():
            items.setdefault(k, v)
        return Map(items, where)
