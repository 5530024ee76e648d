"""``middleware``: not supported; configured entries become warnings."""

from __future__ import annotations

from dockyard.config.tree import Map, Node, Seq, at, is_null, plain


def read_middleware(node: Node | None, warnings: list[str]) -> None:
    """Warns about every configured middleware: dockyard supports none."""
    if node is None:
        return
    if not isinstance(node, Map):
        warnings.append(f'unsupported configuration key "middleware"{at(node.where)}')
        return
    for kind, entries in node.items.items():
        if is_null(entries) or (isinstance(entries, Seq) and not entries.items):
            continue
        names = [
            str(plain(e.items.get("name")))
            for e in (entries.items if isinstance(entries, Seq) else [])
            if isinstance(e, Map) and "name" in e.items
        ]
        warnings.append(
            f"middleware.{kind}: dockyard supports no middleware; ignoring "
            f"{', '.join(names) or 'the entries'}{at(entries.where)}"
        )
