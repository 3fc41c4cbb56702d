"""Where the shared reference samples are, from this checkout or any clone beside ../shared."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def samples_dir() -> Path:
    for base in (REPO.parent / "shared", REPO / "shared", Path("/work/shared")):
        d = base / "reference" / "samples"
        if d.is_dir():
            return d
    raise FileNotFoundError("reference samples not found: expected ../shared/reference/samples beside the repo")


def sample_files() -> list[Path]:
    return sorted(p for p in samples_dir().iterdir() if p.is_file() and p.suffix != ".sh")


def config_id_for(path: Path) -> str | None:
    return "high" if path.name == "keepalived.conf.conditional_conf" else None
