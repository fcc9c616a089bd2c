from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.config import Settings, settings_markdown

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_and_the_reference_is_current() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description and len(info.description) > 15, f"setting {name} needs help text"
    assert (REPO / "docs" / "configuration.md").read_text() == settings_markdown(), (
        "docs/configuration.md is stale: run `python -m facetrace.config > docs/configuration.md`"
    )


def test_environment_variables_configure_and_paths_resolve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACETRACE_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("FACETRACE_WORKERS", "3")
    settings = Settings()
    assert settings.data == (tmp_path / "d").resolve()
    assert settings.workers == 3
    assert settings.resolved_catalog_uri == f"sqlite:///{(tmp_path / 'd' / 'catalog.db').resolve()}"
    assert settings.resolved_index_uri.endswith("/d/faces.faiss")


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACE_MIN_DETECTION_SCORE", "1.5")
    with pytest.raises(ValueError, match="min_detection_score"):
        Settings()


def test_the_detection_threshold_is_the_packs_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from facetrace.engine import open_engine

    assert Settings().min_detection_score is None and Settings().subject_fallback is True
    with open_engine(tmp_path / "pack") as engine:
        analyzer = engine.analyzer_factory()()
        # The default pack's own threshold and floor (its manifest), not a number of the engine's.
        assert (analyzer.min_detection_score, analyzer.fallback_score) == (0.8, 0.65)  # type: ignore[attr-defined]
    monkeypatch.setenv("FACETRACE_MIN_DETECTION_SCORE", "0.7")
    monkeypatch.setenv("FACETRACE_SUBJECT_FALLBACK", "false")
    assert (Settings().analyzer_options().min_detection_score, Settings().analyzer_options().subject_fallback) == (
        0.7,
        False,
    )
    with open_engine(tmp_path / "override") as engine:
        analyzer = engine.analyzer_factory()()
        assert (analyzer.min_detection_score, analyzer.fallback_score) == (0.7, None)  # type: ignore[attr-defined]


def test_the_engine_turns_bad_settings_into_a_config_error(tmp_path: Path) -> None:
    from facetrace.core.errors import ConfigError
    from facetrace.engine import open_engine

    with pytest.raises(ConfigError, match="workers"):
        open_engine(tmp_path, workers=0)


def test_rotation_fallback_reaches_the_analyzer_and_bad_modes_are_refused(tmp_path: Path) -> None:
    from facetrace.core.errors import ConfigError
    from facetrace.engine import open_engine

    assert Settings().rotation_fallback == "auto"
    with open_engine(tmp_path / "off", rotation_fallback="off") as engine:
        assert engine.analyzer.options.rotation_fallback == "off"  # type: ignore[attr-defined]
        assert engine.analyzer_factory()().options.rotation_fallback == "off"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="rotation_fallback"):
        open_engine(tmp_path / "bad", rotation_fallback="sometimes")


def test_restoration_reaches_the_analyzer_and_bad_modes_are_refused(tmp_path: Path) -> None:
    from facetrace.core.errors import ConfigError
    from facetrace.engine import open_engine

    assert Settings().restoration == "auto"
    with open_engine(tmp_path / "off", restoration="off") as engine:
        assert engine.analyzer.options.restoration == "off"  # type: ignore[attr-defined]
        assert engine.analyzer_factory()().options.restoration == "off"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="restoration"):
        open_engine(tmp_path / "bad", restoration="sometimes")


def test_the_analyzer_options_are_the_settings_of_their_names(tmp_path: Path) -> None:
    import dataclasses
    import pickle

    from facetrace.vision.options import AnalyzerOptions

    defaults = Settings(data=tmp_path).analyzer_options()
    assert defaults == dataclasses.replace(AnalyzerOptions(), data_dir=tmp_path)  # one set of defaults
    chosen = Settings(data=tmp_path, pack="p", threads=3, runtime="opencv", flip_tta=True, restoration="off")
    options = chosen.analyzer_options()
    assert (options.pack, options.threads, options.runtime, options.flip_tta, options.restoration) == (
        "p",
        3,
        "opencv",
        True,
        "off",
    )
    assert pickle.loads(pickle.dumps(options)) == options  # worker processes and Ray actors build from it
