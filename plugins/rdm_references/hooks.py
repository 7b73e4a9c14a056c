"""Entry point of the rdm_references plugin: registrations only (cheap, no heavy imports).

Data sources for ``references.train`` / ``references.val`` and curation filters for
``references.filters`` share the ``data_sources`` registry: a filter is a source that wraps
the source it is given as ``source=``.
"""

from __future__ import annotations

from rdm_core import hookimpl


@hookimpl
def rdm_register_data_sources(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(
        "folder",
        "rdm_references.sources.folder:FolderSource",
        help="every .png/.jpg/.jpeg/.webp under a directory (sorted), ADM centre-cropped",
    )
    registry.add(
        "jsonl",
        "rdm_references.sources.jsonl:JsonlSource",
        help='rows {"image": path, "caption": text}, paths relative to the JSONL file',
    )
    registry.add(
        "teacher",
        "rdm_references.sources.teacher:TeacherSource",
        help="multi-step teacher renders of a generator plugin (per-row seeds seed*1_000_003+row)",
    )
    registry.add(
        "prompts",
        "rdm_references.sources.prompts:PromptFile",
        help="an ordered prompt list from a .txt, .json or .jsonl file",
    )
    registry.add("mix", "rdm_references.sources.mix:MixSource", help="several sources concatenated in order")
    registry.add(
        "pickscore_topk",
        "rdm_references.curation:PickScoreTopK",
        help="curation filter: keep the top-k items per caption by a scorer (PickScore)",
    )
    registry.add(
        "geneval_correct",
        "rdm_references.curation:GenevalCorrect",
        help="curation filter: keep renders the GenEval scorer marks correct",
    )


@hookimpl
def rdm_register_stages(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(
        "references",
        "rdm_references.run_stage:ReferencesStage",
        help="reference build: sources, curation, features, training references, banks, floors",
    )
