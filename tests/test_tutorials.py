"""The tutorial notebooks run top to bottom on the demo data, so they never rot; they are committed without outputs.

Each notebook runs in a Jupyter kernel started from this interpreter (the ``python3`` kernel that ipykernel installs
into the environment), in the ``tutorials/`` folder as Jupyter would run it, with its own FAST settings (under about
90 s each on 2 CPU cores). The notebooks write only to temporary folders, here in the test's ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_six_tutorials_are_there() -> None:
    assert [path.name[:3] for path in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_", "06_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    dirty = [i for i, cell in enumerate(_code_cells(notebook)) if cell.outputs or cell.execution_count is not None]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing "
        f"(jupyter nbconvert --clear-output --inplace {path.name})."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom_and_draws(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile.mkdtemp() folders land here, cleaned by pytest
    notebook = nbformat.read(path, as_version=4)
    files_before = sorted(TUTORIALS.rglob("*"))
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    errors = [out for cell in _code_cells(notebook) for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    pictures = [
        out
        for cell in _code_cells(notebook)
        for out in cell.outputs
        if out.output_type == "display_data" and "image/png" in out.get("data", {})
    ]
    assert pictures, f"{path.name} showed no picture"
    assert sorted(TUTORIALS.rglob("*")) == files_before, f"{path.name} wrote into {TUTORIALS}; use a temporary folder"
