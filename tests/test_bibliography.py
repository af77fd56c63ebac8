"""The bibliography names every work the claims and the source modules cite."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

from transformer_theory.theory import bibliography as B
from transformer_theory.theory import claims as claim_package
from transformer_theory.theory import registry
from transformer_theory.theory import sources as source_module
from transformer_theory.theory.claim import Source

CLAIMS = registry.all_claims()
REPO = Path(__file__).resolve().parents[1]


def _title_head(source: Source) -> str:
    """The title part of ``Source.title`` (which goes on with a venue or a place)."""
    return source.title.split(", ")[0].strip()


def _module_sources() -> list[tuple[str, str, Source]]:
    """Every module-level ``Source`` of theory/sources.py and theory/claims/**."""
    modules = [source_module]
    for info in pkgutil.walk_packages(claim_package.__path__, claim_package.__name__ + "."):
        modules.append(importlib.import_module(info.name))
    return [(module.__name__, name, value) for module in modules
            for name, value in vars(module).items() if isinstance(value, Source)]


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_every_claim_source_is_in_the_bibliography(claim):
    for source in claim.sources:
        entry = B.entry_for(source)                  # KeyError names the missing work
        if source.seed is None:
            assert entry.title.lower().startswith(_title_head(source).lower()), (
                f"{claim.id}: {source.authors!r} cites {source.title!r}, the bibliography "
                f"has {entry.title!r}")


def test_every_source_constant_is_in_the_bibliography():
    missing = []
    for module, name, source in _module_sources():
        try:
            B.entry_for(source)
        except KeyError as err:
            missing.append(f"{module}.{name}: {err}")
    assert not missing, "\n".join(missing)


def test_entries_are_complete():
    for key, entry in B.ENTRIES.items():
        assert key == entry.key
        assert entry.authors and entry.title and entry.venue, key
        assert entry.year is None or 1900 < entry.year < 2100, key
        if entry.year is not None and key[-4:].isdigit():
            assert int(key[-4:]) == entry.year, f"{key}: year {entry.year}"


def test_seed_notes_resolve_to_their_files():
    folder = REPO.parent / B.SEED_DIRECTORY
    if not folder.is_dir():
        pytest.skip(f"{folder} not present (the checkout's shared folder)")
    for number, name in B.SEED_FILES.items():
        assert name.startswith(f"{number}_") and (folder / name).is_file(), name


def test_bibliography_is_in_citation_order():
    entries = B.bibliography()
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))
    first = []
    for claim in CLAIMS:
        for source in claim.sources:
            key = B.entry_for(source).key
            if key not in first:
                first.append(key)
    assert keys == first
    assert keys[0] == B.entry_for(CLAIMS[0].sources[0]).key
