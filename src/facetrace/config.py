"""Typed settings. Every field has help text; environment variables use the FACETRACE_ prefix.

The data directory is the whole embedded install: catalog.db (SQLite), faces.faiss (FAISS index, derived),
thumbnails/ (face crops) and packs/ (model packs added by path). Set catalog_uri or index_uri to move either part to
a server without changing how facetrace is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """FACETRACE_DATA, else the user's data directory (XDG_DATA_HOME/facetrace or ~/.local/share/facetrace)."""
    env = os.environ.get("FACETRACE_DATA")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "facetrace"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACETRACE_", frozen=True, extra="ignore")

    data: Path = Field(
        default_factory=default_data_dir, description="Data directory holding catalog, index, thumbnails."
    )
    catalog_uri: str | None = Field(
        default=None,
        description="SQLAlchemy URI of the catalog (sqlite:///… or postgresql://…). Default: sqlite in the data dir.",
    )
    index_uri: str | None = Field(
        default=None,
        description="Vector index: faiss:///path.faiss, milvus:///path.db (Milvus Lite), milvus://host:19530 (server) "
        "or memory://. Default: faces.faiss in the data dir.",
    )
    pack: str | None = Field(
        default=None, description="Model pack id or directory. Default: the built-in freely licensed pack."
    )
    runtime: str = Field(
        default="auto", description="Inference runtime: auto (fastest measured per model), opencv or onnxruntime."
    )
    threads: int = Field(default=1, ge=1, description="Inference threads per worker process.")
    workers: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="Worker processes for ingest (each runs its own models with `threads` threads).",
    )
    batch_size: int = Field(default=32, ge=1, description="Images per ingest batch (one catalog transaction each).")
    flip_tta: bool = Field(
        default=False, description="Average each face's embedding with its mirror image's (slower, more robust)."
    )
    max_image_pixels: int = Field(
        default=50_000_000, ge=1, description="Images declaring more pixels are refused (decompression-bomb guard)."
    )
    min_detection_score: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="Faces the detector is less sure of are ignored. 0.8 keeps animal faces and other look-alikes "
        "out of the gallery (YuNet scores dog faces up to 0.77); lower it to dig for a hard probe.",
    )
    top_k: int = Field(default=10, ge=1, description="Candidates returned per probe face.")

    @property
    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{(self.data / 'catalog.db').resolve()}"

    @property
    def resolved_index_uri(self) -> str:
        return self.index_uri or f"faiss://{(self.data / 'faces.faiss').resolve()}"

    @property
    def thumbnails_dir(self) -> Path:
        return self.data / "thumbnails"


def settings_markdown() -> str:
    """The configuration reference (docs/configuration.md is generated from this; a test keeps them equal)."""
    lines = [
        "# Configuration",
        "",
        "Generated from `facetrace.config.Settings` by `python -m facetrace.config > docs/configuration.md`.",
        "Every setting is an environment variable with the `FACETRACE_` prefix; the CLI's options override them.",
        "",
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        if info.default_factory is not None:
            default = "(computed)"
        else:
            default = "(none)" if info.default is None else f"`{info.default}`"
        lines.append(f"| {name} | FACETRACE_{name.upper()} | {default} | {info.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
