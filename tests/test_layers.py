"""The architecture as a rule: imports only go down the layers (README, "Layout").

Read from the source with `ast` (nothing is imported), so a violation is found even in a module no
test imports. A module may import its own layer and the layers below it, never one above; the data
plane (`localenv`) imports nothing of the program; `benchmarks` and `testbed` import nothing from
`tests`; no module outside `tests` imports another module's private (`_name`) helpers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: list[tuple[str, ...]] = [
    ("rollout.core",),                       # pure: the spec, the state, Iter8's rules, controls, audit
    ("rollout.stats",),                      # pure: the `sequential` algorithm and its tests
    ("rollout.engine",),                     # pure: one iteration, either algorithm
    ("rollout.metrics", "rollout.notify"),   # I/O edges: Prometheus, webhooks
    ("rollout.provider", "rollout.notifier"),  # the Pulumi dynamic providers (CRUD)
    ("rollout.report",),                     # describe, plot, the record model
    ("components",),                         # the Pulumi program's pieces and its stack config
    ("rollout.ops",),                        # operator tools that drive stacks: runner, dry run
    ("rollout.__main__", "__main__"),        # entry points
]
"""Bottom to top."""

PROGRAM = ("rollout", "components", "__main__")
OWN = ("rollout", "components", "localenv", "testbed", "tests", "benchmarks", "__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(*tops: str) -> list[Path]:
    found: list[Path] = []
    for top in tops:
        if top == "__main__":
            found.append(ROOT / "__main__.py")
        else:
            found.extend(sorted((ROOT / top).rglob("*.py")))
    return found


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module imported, names imported from it) for every import of one of the project's modules."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return [(line, module, names) for line, module, names in found if module.split(".")[0] in OWN]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    if module == "rollout":
        return 0  # the package's empty __init__
    for index, prefixes in enumerate(LAYERS):
        if any(_within(module, prefix) for prefix in prefixes):
            return index
    return None


def layer_violations() -> list[str]:
    problems: list[str] = []
    for path in _sources(*PROGRAM):
        here = _module_name(path)
        mine = layer_of(here)
        if mine is None:
            problems.append(f"{here}: in no layer (add it to LAYERS and to README's Layout)")
            continue
        for line, target, _ in _imports(path):
            theirs = layer_of(target)
            if theirs is None:
                problems.append(f"{here}:{line} imports {target}, which is not part of the program")
            elif theirs > mine:
                problems.append(f"{here}:{line} imports {target}, a layer above it ({LAYERS[theirs][0]})")
    return problems


def test_the_program_imports_only_down_the_layers() -> None:
    assert layer_violations() == []


def test_every_layer_exists_and_holds_code() -> None:
    for prefixes in LAYERS:
        for prefix in prefixes:
            path = ROOT / prefix.replace(".", "/")
            assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), prefix


def test_the_check_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard the guard: a core module importing the provider is reported."""
    fake = tmp_path / "rollout" / "core"
    fake.mkdir(parents=True)
    (tmp_path / "rollout" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "spec.py").write_text("from rollout.provider import ExperimentProvider\nimport components.load\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    monkeypatch.setattr(f"{__name__}.PROGRAM", ("rollout",))
    problems = layer_violations()
    assert problems == ["rollout.core.spec:1 imports rollout.provider, a layer above it (rollout.provider)",
                        "rollout.core.spec:2 imports components.load, a layer above it (components)"]


@pytest.mark.parametrize(("top", "forbidden"), [
    ("localenv", ("rollout", "components", "testbed", "tests", "benchmarks", "__main__")),
    ("testbed", ("tests", "benchmarks")),
    ("benchmarks", ("tests",)),
])
def test_support_packages_keep_their_side(top: str, forbidden: tuple[str, ...]) -> None:
    bad = [f"{_module_name(path)}:{line} imports {module}"
           for path in _sources(top) for line, module, _ in _imports(path)
           if module.split(".")[0] in forbidden]
    assert bad == []


def test_no_module_reaches_for_another_modules_private_helpers() -> None:
    bad = [f"{_module_name(path)}:{line} imports {name} from {module}"
           for path in _sources(*PROGRAM, "localenv", "testbed", "benchmarks")
           for line, module, names in _imports(path) for name in names
           if name.startswith("_") and not name.startswith("__") and module != _module_name(path)]
    assert bad == []
