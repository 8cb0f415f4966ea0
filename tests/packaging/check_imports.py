"""Run inside a venv that has fitq installed with one extra (or none), as the images install it:

    python -I check_imports.py fitq worker

For each named package of the *installed* distribution: every import statement in its source
(top level or inside a function, where a lazy import hides until a job runs) must name a
module this venv can find, and every module must import. Prints one problem a line and exits
1 if there is any. Standard library only: it must run before anything else is trusted."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

# Modules that run a program when imported (``__main__``) or run only inside another program.
NOT_IMPORTABLE = ("fitq.store.migrations",)

# Imports a package may make without its extra, each where the code chooses it at run time:
# the SDK alone (no extra) has no S3 client, runs no broker and searches no sweep.
OPTIONAL = {
    "fitq.artifacts_s3": {"boto3", "botocore"},
    "fitq.embedded_broker": {"kombu"},
    # The search runs in the API and the workers; the SDK reads sweeps without it.
    "fitq.sweeps.study": {"optuna"},
    "fitq.sweeps.advance": {"optuna"},
}


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
    return names


def module_name(root: Path, file: Path, package: str) -> str:
    parts = [package, *file.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def check_package(package: str, lenient: set[str]) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return [f"{package}: not installed"]
    root = Path(spec.origin).parent
    if "site-packages" not in root.parts:
        return [f"{package}: imported from {root}, not from the installed distribution"]
    problems: list[str] = []
    for file in sorted(root.rglob("*.py")):
        module = module_name(root, file, package)
        for line, name in imported_names(ast.parse(file.read_text(), str(file))):
            top = name.partition(".")[0]
            if top in OPTIONAL.get(module, set()) and module in lenient:
                continue
            if importlib.util.find_spec(top) is None:
                problems.append(f"{module}:{line} imports {name!r}, which this install lacks")
        if module.startswith(NOT_IMPORTABLE) or module.endswith("__main__") or module in lenient:
            continue
        try:
            importlib.import_module(module)
        except BaseException as exc:  # SystemExit included: report, don't stop
            where = traceback.format_exception_only(exc)[-1].strip()
            problems.append(f"{module}: import fails: {where}")
    return problems


def main(packages: list[str]) -> int:
    # Without an extra, the optional imports may be missing: those modules are not imported.
    bare = packages == ["fitq"]
    lenient = set(OPTIONAL) if bare else set()
    problems = [problem for package in packages for problem in check_package(package, lenient)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
