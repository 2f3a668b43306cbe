"""The user docs: docs/results.md and the README's results table are what bench.results_doc writes from the run
records; the README stays a manual (size, its two commands); no issue numbers or commit hashes in README.md or
docs/; every relative link resolves to a file and, with a #fragment, to a heading there."""
import json
import os
import pathlib
import re

import pytest

from bench import results_doc

ROOT = pathlib.Path(__file__).resolve().parents[2]
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_COMMANDS = (  # CI runs the test command as written in the README
    "python -m bench.run --workflow workflows/wan21_t2v_adacache.json          # a bundled workflow, your real models",
    "python -m pip install -r tests/requirements.txt && python -m pytest tests",
)
ISSUE_REF = re.compile(r"issue [0-9]|(?<![\w&/])#[0-9]+\b", re.IGNORECASE)
# 7-40 hex digits with at least one letter and one digit (not a number, not a word like "defaced"), or any 7-40
# hex digits after "commit"
COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b|(?<=commit )[0-9a-f]{7,40}\b",
                         re.IGNORECASE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text):
    """``text`` without fenced code blocks and inline code (their brackets are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _anchors(markdown):
    """GitHub's heading anchors of a markdown file (repeats get -1, -2, ...)."""
    seen, anchors = {}, set()
    for line in FENCE.sub("", markdown).splitlines():
        if line.startswith("#"):
            slug = results_doc.anchor(line.lstrip("#").strip())
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(path):
    """The relative links of the markdown file ``path`` whose file or heading does not exist."""
    broken = []
    for target in LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(target)
        elif fragment and (linked.suffix != ".md" or fragment not in _anchors(linked.read_text(encoding="utf-8"))):
            broken.append(target)
    return broken


def test_results_md_and_readme_table_are_what_the_records_give():
    for path, text in results_doc.expected_files().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is stale: run python -m bench.results_doc")


def test_every_record_names_its_source():
    records = results_doc.load_records()
    assert records, "no run records in bench/results"
    for name, record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", record["date"]), name
        assert record["command"].startswith("python -m bench."), name
        assert record["machine"], name


def test_readme_is_a_short_manual_with_its_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 8192
    for command in README_COMMANDS:
        assert f"```\n{command}\n```" in readme


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda path: path.name)
def test_no_issue_numbers_or_commit_hashes(path):
    text = path.read_text(encoding="utf-8")
    assert ISSUE_REF.findall(text) == []
    assert COMMIT_HASH.findall(text) == []


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda path: path.name)
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_the_checks_catch_what_they_look_for(tmp_path):
    assert ISSUE_REF.findall("as issue 14 asked; see #12; Issue 3") == ["issue 1", "#12", "Issue 3"]
    assert ISSUE_REF.findall("[x](results.md#tokenprune) &#8212; 1024² at 0.0625") == []
    assert COMMIT_HASH.findall("0b1d483, commit 5811172, 5811172 steps, defaced, 1.93x") == ["0b1d483", "5811172"]
    (tmp_path / "a.md").write_text("# Title\n\n## Same\n\n## Same\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#same-1) [ok](a.md#title) [dir](.) [web](https://x.org/#1) `[code](gone.md)`\n"
                    "[missing file](gone.md) [missing heading](a.md#other) [self](#nowhere)\n", encoding="utf-8")
    assert broken_links(page) == ["gone.md", "a.md#other", "#nowhere"]


def _record(**row_changes):
    row = {"technique": "token_prune", "family": "sdxl", "model": "SDXL", "setting": "ratio 0.5",
           "baseline": "unpatched on SDPA", "speedup": "1.64x", "quality": None, "work": "ideal 1.59x",
           **row_changes}
    return {"command": "python -m bench.real_shapes", "machine": "m", "comfyui": "0.8.0", "date": "2026-11-28",
            "protocol": "p", "rows": [row]}


def test_a_malformed_record_is_refused_with_its_name():
    results_doc.check_record("ok", _record())
    with pytest.raises(results_doc.RecordError, match=r"run record bad, row 0: unknown technique 'tome'"):
        results_doc.check_record("bad", _record(technique="tome"))
    with pytest.raises(results_doc.RecordError, match=r"run record bad, row 0: missing nothing, unknown speed"):
        results_doc.check_record("bad", _record(speed="1x"))
    record = _record()
    del record["date"]
    with pytest.raises(results_doc.RecordError, match=r"run record bad: missing date"):
        results_doc.check_record("bad", record)


def test_rendering_keeps_values_as_written_and_names_the_run(tmp_path):
    (tmp_path / "sdxl-run.json").write_text(json.dumps(_record(readme="SDXL 1024²", speedup="1.50x")),
                                            encoding="utf-8")
    records = results_doc.load_records(tmp_path)
    page = results_doc.render_results(records)
    assert ("| SDXL | ratio 0.5 | unpatched on SDPA | 1.50x | — | ideal 1.59x | [sdxl-run](#sdxl-run) |"
            in page.splitlines())
    assert "m; ComfyUI 0.8.0; recorded 2026-11-28. p" in page
    assert "## TokenPrune" in page and "## AdaCache" not in page
    readme = results_doc.readme_with_table(f"a\n{results_doc.README_BEGIN}\nold\n{results_doc.README_END}\nb",
                                           records)
    assert readme.splitlines()[4] == ("| [TokenPrune](docs/results.md#tokenprune) | ratio 0.5 | SDXL 1024² | "
                                      "unpatched on SDPA | 1.50x | — |")
    assert readme.endswith(f"{results_doc.README_END}\nb")


def test_drafts_from_the_bench_json(tmp_path):
    real_shapes = {"dtype": "float32", "device": "cpu", "threads": 2, "selection": {"repeats": 1}, "rows": [
        {"case": "SDXL 1024²", "variant": "baseline", "technique": "", "speedup": 1.0, "speedup_vs_sdpa": 0.8,
         "ideal": 1.0},
        {"case": "SDXL 1024²", "variant": "TokenPrune 0.5", "technique": "token_prune", "speedup": 1.926,
         "speedup_vs_sdpa": 1.6449, "ideal": None}]}
    path = tmp_path / "real_shapes.json"
    path.write_text(json.dumps(real_shapes), encoding="utf-8")
    record = results_doc.draft_record(path, "0.33.0", date="2026-12-03")
    assert [(row["baseline"], row["speedup"], row["work"]) for row in record["rows"]] == [
        ("unpatched (ComfyUI attention)", "1.93x", None), ("unpatched on SDPA", "1.64x", None)]
    assert record["protocol"] == "float32 on cpu, 2 threads, medians of 1 timed run(s) after one untimed run."
    bench = {"command": "python -m bench.run --bench --tiny", "repeats": 3, "cases": [
        {"title": "tiny wan21", "technique": "adacache", "family": "wan21", "results": [
            {"name": "baseline", "speedup": 1.0, "psnr_latent": "inf", "ssim_latent": 1.0, "work_skipped": 0.0},
            {"name": "AdaCache slow", "speedup": 1.04, "psnr_latent": "inf", "ssim_latent": 1.0,
             "work_skipped": 0.0},
            {"name": "AdaCache fast", "speedup": 2.333, "psnr_latent": 41.46, "ssim_latent": 0.9812,
             "work_skipped": 0.683}]}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench), encoding="utf-8")
    record = results_doc.draft_record(path, "0.8.0", date="2026-12-03")
    results_doc.check_record("draft", record)
    assert [(row["setting"], row["speedup"], row["quality"], row["work"]) for row in record["rows"]] == [
        ("AdaCache slow", "1.04x", "identical", "+0.0 % FLOPs skipped"),
        ("AdaCache fast", "2.33x", "latent PSNR 41.5 dB, SSIM 0.981", "+68.3 % FLOPs skipped")]


SUPPORT_TABLE = re.compile(r"(<!-- support table:[^\n]*-->\n)(.*?)(<!-- end of support table -->)", re.DOTALL)


def test_support_doc_is_the_support_table():
    from freeaccel.accel_core import families
    doc = ROOT / "docs" / "support.md"
    text = doc.read_text(encoding="utf-8")
    assert SUPPORT_TABLE.search(text), "docs/support.md has no generated support table"
    if os.environ.get("FREEACCEL_UPDATE_DOCS") == "1":
        text = SUPPORT_TABLE.sub(lambda m: m.group(1) + families.support_markdown() + m.group(3), text)
        doc.write_text(text, encoding="utf-8")
    assert SUPPORT_TABLE.search(text).group(2) == families.support_markdown(), (
        "docs/support.md is stale; regenerate it with FREEACCEL_UPDATE_DOCS=1 python -m pytest tests/unit/test_docs.py")
