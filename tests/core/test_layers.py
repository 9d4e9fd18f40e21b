"""The direction of imports: the import-linter layers contract in pyproject.toml holds, and it
would catch a lower layer importing a higher one."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(config: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), "install the dev extras: pip install -e '.[dev]'"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _contract() -> dict[str, object]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    return dict(contract)


def test_the_layers_contract_is_kept() -> None:
    result = _lint(REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_orders_the_layers_as_the_data_flows() -> None:
    layers = [str(layer).split("#")[0].strip() for layer in _contract()["layers"]]  # type: ignore[attr-defined]
    order = ["digest.cli", "digest.webhooks", "digest.delivery", "digest.editions"]
    order += ["digest.render", "digest.backends", "digest.message", "digest.db"]
    positions = [next(i for i, layer in enumerate(layers) if name in layer) for name in order]
    assert positions == sorted(positions)


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    # The contract with render and content swapped: render's imports of content must be
    # reported, so a real upward import would be too.
    layers = [str(layer) for layer in _contract()["layers"]]  # type: ignore[attr-defined]
    render = layers.index("digest.render")
    layers[render], layers[render + 1] = layers[render + 1], layers[render]
    quoted = ", ".join(f'"{layer}"' for layer in layers)
    config = tmp_path / "contract.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["digest", "subscribers"]\n'
        f'[[tool.importlinter.contracts]]\nname = "layers"\ntype = "layers"\nlayers = [{quoted}]\n',
        encoding="utf-8",
    )
    result = _lint(config)
    assert result.returncode != 0
    assert "digest.render is not allowed to import digest.content" in result.stdout
