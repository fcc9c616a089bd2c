"""A file of the repository that is not in the package (a bench/ or scripts/ program, a migration) loaded as a module,
so that a test can call its functions."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_module(path: str | Path) -> ModuleType:
    """The file at path (relative: from the repository's root), executed as a module named after it."""
    path = REPO_ROOT / path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module
