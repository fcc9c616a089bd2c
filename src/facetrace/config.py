"""Typed settings. Every field has help text; environment variables use the FACETRACE_ prefix.

The data directory is the whole embedded install: catalog.db (SQLite), faces.faiss (FAISS index, derived, with its
sidecar), thumbnails/ (face crops), packs/ (model packs added by path), facetrace.json (the catalog and index it was
made with), audit.key and audit.head (the audit chain's key and its recorded head; back up audit.key with the
catalog) and writer.lock (the writer lock's file). Set catalog_uri or index_uri to move either part to a server
without changing how facetrace is used.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from facetrace.core.types import MAX_TOP_K
from facetrace.core.vocabulary import IndependentReview
from facetrace.vision.options import AnalyzerOptions, Landmarks, Restoration, RotationFallback

# The analyzer's settings take their defaults from its options record, so the two cannot drift apart.
_ANALYZER_DEFAULTS = AnalyzerOptions()


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
    target_recall: float = Field(
        default=0.99,
        ge=0.5,
        le=1.0,
        description="Recall@1 against exact search that an approximate FAISS index tunes its search depth (nprobe, "
        "re-ranking depth) to reach, measured on its own vectors when it is trained and again when it has doubled "
        "(see docs/backends.md).",
    )
    pack: str | None = Field(
        default=_ANALYZER_DEFAULTS.pack,
        description="Model pack id or directory. Default: the built-in freely licensed pack.",
    )
    runtime: str = Field(
        default=_ANALYZER_DEFAULTS.runtime,
        description="Inference runtime: auto (fastest measured per model), opencv or onnxruntime.",
    )
    threads: int = Field(default=_ANALYZER_DEFAULTS.threads, ge=1, description="Inference threads per worker process.")
    workers: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="Worker processes for ingest (each runs its own models with `threads` threads).",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ingest on Ray instead of local worker processes: local (start Ray here with all cores), auto "
        "(the cluster this machine belongs to), host:port (a cluster's head) or ray://host:port (Ray Client). "
        "Needs the ray extra; every node needs facetrace and the model pack, not the photos (docs/ingest.md).",
    )
    batch_size: int = Field(default=32, ge=1, description="Images per ingest batch (one catalog transaction each).")
    flip_tta: bool = Field(
        default=_ANALYZER_DEFAULTS.flip_tta,
        description="Average each face's embedding with its mirror image's (slower, more robust).",
    )
    max_image_pixels: int = Field(
        default=_ANALYZER_DEFAULTS.max_image_pixels,
        ge=1,
        description="Images declaring more pixels are refused (decompression-bomb guard).",
    )
    concurrent_analyses: int = Field(
        default=_ANALYZER_DEFAULTS.concurrent_analyses,
        ge=0,
        description="Photos one process decodes and analyses at once, and the threads of the searches' probe pool "
        "(each runs its models and index queries on one thread); further requests wait their turn, so concurrent "
        "large probes cannot exhaust memory. 0: the number of cores.",
    )
    max_analysis_pixels: int = Field(
        default=_ANALYZER_DEFAULTS.max_analysis_pixels,
        ge=1_000_000,
        description="Larger photos are analysed reduced to this many pixels (a JPEG is decoded reduced), which bounds "
        "the time and memory one photo can cost; boxes are still given in the photo's own pixels.",
    )
    min_detection_score: float | None = Field(
        default=_ANALYZER_DEFAULTS.min_detection_score,
        ge=0.0,
        le=1.0,
        description="Faces the detector is less sure of are ignored. Unset: the model pack's own threshold, "
        "calibrated for its detector so that it finds every LFW face and no dog in dlib's dogs.jpg (0.8 for the "
        "default pack's YuNet, which scores dog faces up to 0.77; docs/models.md). A number overrides it: lower it "
        "to dig for a hard probe.",
    )
    subject_fallback: bool = Field(
        default=_ANALYZER_DEFAULTS.subject_fallback,
        description="A photo with no face at min_detection_score keeps its best upright face scoring at least the "
        "pack's fallback_score (0.65 for the default pack) whose eyes show where a face's are, flagged "
        "low_detection_score (weak evidence), so a one-person photo does not silently become 'no face'. false: such "
        "a photo has no face.",
    )
    rotation_fallback: RotationFallback = Field(
        default=_ANALYZER_DEFAULTS.rotation_fallback,
        description="Faces turned in plane: also detect on copies of the photo turned every 45° and levelled on the "
        "eye line. auto does so only when the upright pass looks unsure (no face, a best score below 0.9, an eye line "
        "tilted over 15°; over 10°: one 45° turn), so upright photos rarely pay; always does so for every photo (8-9 "
        "detection passes); off never. See docs/accuracy.md (Rotation).",
    )
    restoration: Restoration = Field(
        default=_ANALYZER_DEFAULTS.restoration,
        description="Grainy and flat photos: auto passes a photo through a 5x5 median filter when it measures grainy "
        "and stretches its grey range when it measures flat, before detection and embedding (quality flags and "
        "thumbnails still come from the photo as it came); clean photos are left alone. off never. See "
        "docs/robustness.md (Restoration).",
    )
    landmarks: Landmarks = Field(
        default=_ANALYZER_DEFAULTS.landmarks,
        description="Where the five points that align a face for the embedder come from: detector (the detector's "
        "own), refined (MediaPipe's 468-point face mesh run on every detected face, reduced to five points; about 2 "
        "ms a face), turned (the mesh's for faces turned more than 35 degrees or doubted by the detector, about one "
        "face in eight on LFW, the detector's for the rest: turned faces gain as much, frontal ones less) or auto "
        "(refined when the mesh model is installed, else detector). "
        "The model is installed into the data directory by `python scripts/install_face_mesh.py --data DIR`; "
        "without it refined and turned are refused. See docs/accuracy.md (Turned faces).",
    )
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K, description="Candidates returned per probe face (1-1000).")
    sign_in_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed password sign-ins for one user name within sign_in_window_s that lock it out "
        "(web UI and HTTP Basic; counted in memory per server process).",
    )
    sign_in_max_failures_per_address: int = Field(
        default=20,
        ge=1,
        description="Failed password sign-ins from one client address within sign_in_window_s that lock it out "
        "(higher than per user: several people may share an address).",
    )
    sign_in_window_s: float = Field(default=900.0, gt=0, description="Sliding window for counting failed sign-ins.")
    sign_in_lockout_s: float = Field(
        default=900.0, gt=0, description="How long a locked-out user name or address is refused, right password or not."
    )
    api_requests_per_minute: float = Field(
        default=120.0, ge=0, description="Sustained API requests per minute per API key (or Basic user); 0: no limit."
    )
    api_burst: int = Field(
        default=60, ge=1, description="API requests one key may make at once before the rate limit applies."
    )
    search_requests_per_minute: float = Field(
        default=30.0,
        ge=0,
        description="Searches and comparisons per minute per API key, on top of the general limit; 0: no limit.",
    )
    search_burst: int = Field(
        default=10, ge=1, description="Searches one key may make at once before the search rate limit applies."
    )
    cluster_at_ingest: bool = Field(
        default=True,
        description="Once clusters are saved (`facetrace cluster --save`), each ingest places its new faces: a face "
        "joins the existing cluster the conservative rules allow, else it starts a new one (recorded as events). "
        "Has no effect until clusters are saved.",
    )
    ingest_roots: tuple[Path, ...] = Field(
        default=(),
        description="Server folders the HTTP API may ingest from by path or manifest (a JSON list, e.g. "
        '["/srv/photos"]); every file, including each manifest row, must resolve inside one. Empty: uploads only.',
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto headers are believed (a "
        'JSON list, e.g. ["127.0.0.1"]). Empty: the headers are ignored and the client is the peer address. See '
        "docs/security.md.",
    )
    audit_key_file: Path | None = Field(
        default=None,
        description="The secret that seals the audit chain (HMAC), kept outside the catalog; made on first use "
        "(mode 0600). Default: audit.key in the data directory. Servers sharing one PostgreSQL catalog need the same "
        "file. See docs/security.md.",
    )
    independent_review: IndependentReview = Field(
        default=IndependentReview.REQUIRED,
        description="The four-eyes rule, set by policy and not by the searcher: required, no one reviews the "
        "candidates of a search they ran, in every case (asking to open a case without it is refused); optional, the "
        "investigator opening a case chooses (requires_independent_review, default true). See docs/service.md.",
    )
    retention_days: int | None = Field(
        default=None,
        ge=0,
        description="Days an ingested photo and its faces are kept before `facetrace purge` deletes them, for items "
        "whose manifest row or ingest command does not say (retain_days column, --retain-days). Default: kept until "
        "erased.",
    )

    def analyzer_options(self) -> AnalyzerOptions:
        """The analyzer these settings describe: what ingest, search and the accuracy harness (facetrace eval) run."""
        # Every option is the setting of its name, but the data directory (whose packs/ holds added packs).
        named = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(AnalyzerOptions)
            if field.name != "data_dir"
        }
        return AnalyzerOptions(data_dir=self.data, **named)

    @property
    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{(self.data / 'catalog.db').resolve()}"

    @property
    def resolved_index_uri(self) -> str:
        return self.index_uri or f"faiss://{(self.data / 'faces.faiss').resolve()}"

    @property
    def resolved_audit_key_file(self) -> Path:
        return self.audit_key_file or self.data / "audit.key"

    @property
    def thumbnails_dir(self) -> Path:
        return self.data / "thumbnails"

    @property
    def uploads_dir(self) -> Path:
        """Photos uploaded to the HTTP API for ingest, one folder per job; the catalog's asset uris point here."""
        return self.data / "uploads"


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
