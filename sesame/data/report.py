"""The human summary of a corpus preparation (also what ``sesame data info`` prints)."""
from __future__ import annotations

from pathlib import Path


def _n(x: int) -> str:
    return f"{x:,}"


def summary_text(meta: dict, out: str | Path | None = None) -> str:
    bad = meta["bad_input"]
    inputs = meta["inputs"]
    size = sum(i["bytes"] for i in inputs)
    where = f" in {out}" if out else ""
    lines = [
        f"prepared {len(inputs)} input file(s), {size / 1e6:.2f} MB, into {len(meta['shards'])} shard(s){where}"
        + (f" [{meta['elapsed_s']:.1f} s, {meta['mb_per_s']:.2f} MB/s]" if "elapsed_s" in meta else ""),
        f"  documents {_n(meta['num_docs'])}, sentences {_n(meta['num_sentences'])}, tokens "
        f"{_n(meta['num_tokens'])} ({meta['tokens_dtype']}), entity spans {_n(meta['num_entities'])}"
        + (f" ({', '.join(meta['entity_types'])})" if meta["entity_types"] else ""),
    ]
    if meta.get("resumed_shards"):
        lines.append(f"  resumed: {meta['resumed_shards']} shard(s) were already finished")
    skipped = meta.get("skipped_inputs") or []
    if skipped:
        names = ", ".join(Path(p).name for p in skipped[:4]) + (", ..." if len(skipped) > 4 else "")
        lines.append(f"  skipped {len(skipped)} file(s) in input directories with other extensions: {names}")
    lines.append("  bad input:")
    lines.append(f"    invalid UTF-8: {_n(bad['invalid_utf8_bytes'])} byte(s) replaced by U+FFFD")
    for path, n in list(bad["invalid_utf8_by_file"].items())[:10]:
        lines.append(f"      {path}: {_n(n)}")
    lines.append(f"    empty lines: {_n(bad['empty_lines'])}, whitespace-only lines: {_n(bad['whitespace_lines'])}"
                 " (document boundaries where the boundary is 'blank'; skipped otherwise)")
    if bad["bad_records"]:
        lines.append(f"    unreadable records skipped: {_n(bad['bad_records'])}")
        for example in bad["bad_record_examples"]:
            lines.append(f"      {example}")
    lines.append(f"    empty documents skipped: {_n(bad['empty_documents'])}, empty after tokenizing: "
                 f"{_n(bad['empty_after_tokenizing'])}")
    dup = bad["duplicate_documents"]
    if bad["duplicates_removed"]:
        lines.append(f"    exact duplicate documents: {_n(dup)}, removed (first occurrence kept)")
    else:
        lines.append(f"    exact duplicate documents: {_n(dup)}, kept" + (" (--dedup removes them)" if dup else ""))
    if bad["entities_without_tokens"] or bad["entities_overlapping_dropped"]:
        lines.append(f"    entity spans dropped: {_n(bad['entities_without_tokens'])} covering no token, "
                     f"{_n(bad['entities_overlapping_dropped'])} overlapping an earlier span")
    lines.append(f"  long documents: {_n(meta['long_documents'])} longer than the {meta['window']}-token window, "
                 f"chunked into {_n(meta['long_document_windows'])} windows, none truncated")
    lines.append(f"  kept: {100 * meta['text_kept_fraction']:.2f}% of the text, every token of the kept "
                 f"documents; unknown tokens: {_n(meta['unk_tokens'])} ({100 * meta['unk_rate']:.3f}%)")
    return "\n".join(lines)
