"""The enforced layering of the project, read from every module's imports (ast), and no cycles.

The flow (an arrow points from a layer to the layers that may import it):

    contracts <- chain_node <- tbcim.{blockchain, lower, auction, fl, matching} <- tbcim.market
              <- tbcim.figures <- tbcim.cli / scripts

* The base layer (``tbcim`` itself, ``tbcim.errors``, ``tbcim.results``, ``tbcim.seeding``,
  ``tbcim.configfile``) imports nothing else from the project and may be imported by everyone.
* A module may import its own package, the base layer and any lower layer.
* Between the peers of one layer exactly two sideways edges are allowed, and named in
  ``SIDEWAYS``: auction -> lower (a TBCIM ES's type is its lower-level equilibrium) and
  fl -> blockchain (FL clients encode their updates for the chain). ``tbcim.matching`` (the second
  paper's market) is a peer with no sideways edge.
* No import cycle between modules.

Every import counts, wherever it stands: at module level, inside a function (a lazy import) or
under ``if TYPE_CHECKING``. A package that does not exist yet (``tbcim/market``) is simply absent;
a new top-level package of ``tbcim`` must be given a layer here before it may be imported.
The checker is shown to fail on fixture trees written by the tests below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("tbcim", "chain_node", "scripts")

BASE = frozenset({"tbcim", "tbcim.errors", "tbcim.results", "tbcim.seeding", "tbcim.configfile"})
#: Layer of each group of modules; a module may import groups of a strictly lower layer.
LAYERS: dict[str, int] = {
    "base": 0,
    "chain_node": 1,
    "tbcim.blockchain": 2,
    "tbcim.lower": 2,
    "tbcim.auction": 2,
    "tbcim.fl": 2,
    "tbcim.matching": 2,
    "tbcim.market": 3,
    "tbcim.figures": 4,
    "tbcim.cli": 5,
    "scripts": 5,
}
#: The only imports allowed between two groups of the same layer.
SIDEWAYS = frozenset({("tbcim.auction", "tbcim.lower"), ("tbcim.fl", "tbcim.blockchain")})

Graph = dict[str, set[str]]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, roots: Iterable[str] = ROOTS) -> Graph:
    """Module -> the project modules it imports (anywhere in its body), for the tree at ``root``."""
    files = {
        module_name(root, path): path
        for top in roots
        if (root / top).is_dir()
        for path in sorted((root / top).rglob("*.py"))
    }
    graph: Graph = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(name, is_package, node.level, node.module)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.add(submodule if submodule in files else source)
        graph[name] = {t for t in targets if t.split(".")[0] in roots} - {name}
    return graph


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def group(module: str) -> str | None:
    """The layer group of ``module``; None for a tbcim package that has no layer yet."""
    if module in BASE:
        return "base"
    top = module.split(".")[0]
    if top in ("chain_node", "scripts"):
        return top
    name = ".".join(module.split(".")[:2])
    return name if name in LAYERS else None


def violations(graph: Graph) -> list[str]:
    """Every edge against the flow, as ``importer -> imported (why)``."""
    found = []
    for source, targets in sorted(graph.items()):
        src = group(source)
        if src is None:
            found.append(f"{source}: its package has no layer in tests/test_layering.py")
            continue
        for target in sorted(targets):
            dst = group(target)
            if dst is None:
                found.append(f"{source} -> {target}: the imported package has no layer")
            elif src == dst and src != "base":
                continue
            elif src == "base":
                if dst != "base":
                    found.append(f"{source} -> {target}: the base layer imports only itself")
            elif LAYERS[dst] < LAYERS[src] or (src, dst) in SIDEWAYS:
                continue
            elif LAYERS[dst] == LAYERS[src]:
                found.append(f"{source} -> {target}: sideways edge {src} -> {dst} not allowed")
            else:
                found.append(f"{source} -> {target}: against the flow ({src} is below {dst})")
    return found


def cycles(graph: Graph) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of two or more modules
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# ----- the project -------------------------------------------------------------------------


def test_the_project_follows_the_flow() -> None:
    graph = import_graph(REPO)
    assert "tbcim.auction.settings" in graph and "chain_node.node" in graph  # the walk saw them
    assert violations(graph) == []


def test_the_project_has_no_import_cycle() -> None:
    assert cycles(import_graph(REPO)) == []


def test_the_base_layer_imports_only_itself() -> None:
    graph = import_graph(REPO)
    for module in sorted(BASE):
        assert graph[module] <= BASE, module


def test_the_allowed_sideways_edges_are_used() -> None:
    """The two named exceptions exist for a reason: each is an edge of the project (once its
    package exists), so the list does not silently outlive its need."""
    graph = import_graph(REPO)
    used = {(group(s), group(t)) for s, ts in graph.items() for t in ts}
    for edge in SIDEWAYS:
        if any(group(m) == edge[0] for m in graph):
            assert edge in used, edge


# ----- the checker fails on a tree that breaks the rules -----------------------------------


def _tree(root: Path, modules: Mapping[str, str]) -> Path:
    """Write the modules ``{"tbcim.lower.x": source}`` (with their packages) under ``root``."""
    for name, source in modules.items():
        parts = name.split(".")
        for depth in range(1, len(parts)):
            package = root.joinpath(*parts[:depth])
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").touch()
        if any(other.startswith(f"{name}.") for other in modules):
            path = root.joinpath(*parts, "__init__.py")
        else:
            path = root.joinpath(*parts[:-1], f"{parts[-1]}.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


GOOD = {
    "tbcim": "",
    "tbcim.errors": "",
    "tbcim.results": "",
    "tbcim.configfile": "from tbcim.errors import ConfigError\n",
    "chain_node.node": "from tbcim.results import write_json\n",
    "tbcim.lower.costs": "import numpy\nfrom tbcim.errors import ConfigError\n",
    "tbcim.lower.gas": "from chain_node.node import Node\nfrom . import costs\n",
    "tbcim.auction.settings": "from tbcim.lower.costs import MarketParams\n",
    "tbcim.blockchain.codec": "from chain_node import node\n",
    "tbcim.fl.client": "from tbcim.blockchain.codec import FixedPointCodec\n",
    "tbcim.market.run": "from tbcim.auction import settings\nfrom tbcim.fl import client\n",
    "tbcim.cli.main": "import tbcim.market.run\nfrom tbcim.lower.costs import MarketParams\n",
    "scripts.bench": "from tbcim.auction.settings import X\nfrom tbcim.configfile import read\n",
}


def test_a_tree_that_follows_the_flow_passes(tmp_path: Path) -> None:
    graph = import_graph(_tree(tmp_path, GOOD))
    assert graph["tbcim.lower.gas"] == {"chain_node.node", "tbcim.lower.costs"}
    assert graph["tbcim.blockchain.codec"] == {"chain_node.node"}
    assert graph["tbcim.cli.main"] == {"tbcim.market.run", "tbcim.lower.costs"}
    assert violations(graph) == [] and cycles(graph) == []


def test_a_tree_without_the_future_packages_passes(tmp_path: Path) -> None:
    absent = {k: v for k, v in GOOD.items() if not k.startswith(("tbcim.market", "tbcim.fl"))}
    absent["tbcim.cli.main"] = "from tbcim.lower.costs import MarketParams\n"
    graph = import_graph(_tree(tmp_path, absent))
    assert violations(graph) == [] and cycles(graph) == []


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("tbcim.lower.bad", "from tbcim.cli.main import run\n", "against the flow"),
        ("tbcim.lower.bad", "def f():\n    import tbcim.market.run\n", "against the flow"),
        ("chain_node.bad", "from tbcim.lower import costs\n", "against the flow"),
        ("tbcim.market.bad", "import scripts.bench\n", "against the flow"),
        ("tbcim.lower.bad", "from tbcim.auction.settings import X\n", "sideways"),
        ("tbcim.matching.bad", "from tbcim.lower.costs import X\n", "sideways"),
        ("tbcim.fl.bad", "from tbcim.lower.costs import X\n", "sideways"),
        ("tbcim.cli.bad", "import scripts.bench\n", "sideways"),
        ("tbcim.errors", "from tbcim.lower import costs\n", "base layer"),
        (
            "tbcim.seeding",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import chain_node.node\n",
            "base layer",
        ),
        ("tbcim.newpart.x", "from tbcim.errors import ConfigError\n", "no layer"),
        ("tbcim.lower.bad", "from tbcim.newpart import x\n", "no layer"),
    ],
)
def test_an_edge_against_the_flow_fails(tmp_path: Path, module: str, source: str, why: str) -> None:
    graph = import_graph(_tree(tmp_path, {**GOOD, module: source}))
    found = violations(graph)
    assert found and all(why in line for line in found), found
    assert found[-1].startswith(module), found


def test_a_cycle_fails(tmp_path: Path) -> None:
    lazy = {
        "tbcim.auction.trainer": "def save():\n    from tbcim.auction.checkpoint import write\n",
        "tbcim.auction.checkpoint": "from tbcim.auction.trainer import TrainResult\n",
    }
    graph = import_graph(_tree(tmp_path / "lazy", {**GOOD, **lazy}))
    assert violations(graph) == []  # within one package: only the cycle is wrong
    assert cycles(graph) == [["tbcim.auction.checkpoint", "tbcim.auction.trainer"]]

    typed = {
        "tbcim.auction.mechanism": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from .settings import AuctionSetting\n",
        "tbcim.auction.settings": "from .mechanism import Profiles\n",
    }
    graph = import_graph(_tree(tmp_path / "typed", {**GOOD, **typed}))
    assert cycles(graph) == [["tbcim.auction.mechanism", "tbcim.auction.settings"]]

    three = {
        "tbcim.lower.a": "import tbcim.lower.b\n",
        "tbcim.lower.b": "from tbcim.lower import c\n",
        "tbcim.lower.c": "from . import a\n",
    }
    graph = import_graph(_tree(tmp_path / "three", {**GOOD, **three}))
    assert cycles(graph) == [["tbcim.lower.a", "tbcim.lower.b", "tbcim.lower.c"]]


def test_relative_imports_resolve(tmp_path: Path) -> None:
    tree = {
        **GOOD,
        "tbcim.auction.ranet.nets": "from ..settings import X\nfrom . import config\n",
        "tbcim.auction.ranet.config": "from ...errors import ConfigError\n",
    }
    graph = import_graph(_tree(tmp_path, tree))
    assert graph["tbcim.auction.ranet.nets"] == {
        "tbcim.auction.settings",
        "tbcim.auction.ranet.config",
    }
    assert graph["tbcim.auction.ranet.config"] == {"tbcim.errors"}
