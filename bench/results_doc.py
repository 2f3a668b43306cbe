"""docs/results.md and the README's results table, written from the run records in bench/results/*.json.

    python -m bench.results_doc            # rewrite docs/results.md and the README's results table
    python -m bench.results_doc --check    # exit 1, naming the file, when either differs from the records
    python -m bench.results_doc --draft bench/out/real_shapes.json --comfyui 0.8.0 --out bench/results/<name>.json

A run record is one command's measurement: where it came from (``command``, ``machine``, ``comfyui``, ``date``,
``protocol``, optional ``notes``) and its ``rows``, each one setting of one technique against one named baseline
(``technique``, ``family``, ``model``, ``setting``, ``baseline``, ``speedup``, ``quality``, ``work``; ``readme``, when
given, is the short model name under which the row also appears in the README's table). Values are the text the
run reported (``"1.93x"``, ``"worst 36.0 dB, median 42.6 dB"``), never re-rounded; ``null`` = not measured.
``--draft`` turns the JSON the bench writes (``bench/out/bench.json``, ``bench/out/real_shapes.json``) into a record
to review: fill in ``model`` and the readme labels, delete the rows nobody needs, then regenerate.
"""
import argparse
import datetime
import json
import math
import pathlib
import sys

PACK_ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORDS_DIR = PACK_ROOT / "bench" / "results"
RESULTS_MD = PACK_ROOT / "docs" / "results.md"
README = PACK_ROOT / "README.md"
MACHINE = "2-core AVX2 CPU, fp32"

# technique key -> section title in docs/results.md, in the order of the README's node table
TECHNIQUES = {
    "adacache": "AdaCache",
    "temporal_prune": "TemporalAttnPrune",
    "token_prune": "TokenPrune",
    "local_window": "Local Window Attention",
    "motion_transfer": "Motion Transfer Guider",
    "attention_backend": "Attention Backend",
}
RUN_FIELDS = ("command", "machine", "comfyui", "date", "protocol", "rows")
ROW_FIELDS = ("technique", "family", "model", "setting", "baseline", "speedup", "quality", "work")
OPTIONAL_ROW_FIELDS = ("readme",)
README_BEGIN = "<!-- results table: written by `python -m bench.results_doc` from bench/results/*.json -->"
README_END = "<!-- end of results table -->"
NOT_MEASURED = "—"
# the two baselines of the real-width runs, as the records name them
BASELINE_COMFY_ATTENTION = "unpatched (ComfyUI attention)"
BASELINE_SDPA = "unpatched on SDPA"

INTRO = """\
# Measured results

Written by `python -m bench.results_doc` from the run records in [`bench/results/`](../bench/results); do not edit
by hand. One table per node; each row is one setting against the baseline it names, and its last column links to
the run: the command that produced it (run it from the pack folder with ComfyUI's Python, see
[CONTRIBUTING.md](../CONTRIBUTING.md#benchmarks)), the machine, the ComfyUI version and the date.

**Nothing has been measured on real model weights or on a GPU yet.** Every run below is on a 2-core CPU, on these
models:

- **real width, random weights**: ComfyUI's own model classes at their real width, heads and token counts (WAN with
  2 blocks only), random weights, one model call per step. They show speed, not quality (no quality column).
- **trained tiny WAN 2.1**: ComfyUI's `WanModel` with 4 blocks, trained here on procedural clips in four motion
  classes (static, slow pan, fast, mixed), 16 channels × 9 frames × 16 × 16 latents
  ([samples](../bench/results/trained_wan21_samples.png), [loss](../bench/results/trained_wan21_loss.png)). It tells
  the motion classes apart but is far from a good generator: read its PSNRs relative to each other.
- **trained tiny UNets**: SD1.5- and SDXL-layout UNets of ComfyUI's classes, 32 channels, trained on procedural
  images in three classes. Their wall times say nothing about speed.
- **tiny, random weights**: plumbing checks; the content-dependent decisions mean nothing there.

Columns: **speedup** = the baseline's wall time / the setting's; **quality** = PSNR (and SSIM) of the output latent
against the baseline's output from the same noise ("identical" = bit-identical); **work** = FLOPs counted with
torch's `FlopCounterMode` (CPU attention included): the share skipped, or "ideal" = the baseline's FLOPs / the
setting's. Two baselines recur at real widths: the unpatched model on ComfyUI's CPU attention (its sub-quadratic
kernel, slower than torch SDPA, so it flatters anything that replaces attention) and the unpatched model on torch
SDPA (`FreeAccel_AttentionBackend` sdpa, as a fused-attention GPU build runs it), the fairer one.
"""


class RecordError(ValueError):
    """A run record that is missing a field or names an unknown technique."""


def load_records(records_dir=RECORDS_DIR):
    """Every ``*.json`` in ``records_dir`` as ``(name, record)``, sorted by file name, each checked."""
    records = []
    for path in sorted(pathlib.Path(records_dir).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        check_record(path.stem, record)
        records.append((path.stem, record))
    return records


def check_record(name, record):
    missing = [key for key in RUN_FIELDS if key not in record]
    if missing:
        raise RecordError(f"run record {name}: missing {', '.join(missing)}")
    if not record["rows"]:
        raise RecordError(f"run record {name}: no rows")
    for index, row in enumerate(record["rows"]):
        missing = [key for key in ROW_FIELDS if key not in row]
        unknown = sorted(set(row) - set(ROW_FIELDS) - set(OPTIONAL_ROW_FIELDS))
        if missing or unknown:
            raise RecordError(f"run record {name}, row {index}: missing {', '.join(missing) or 'nothing'}, "
                              f"unknown {', '.join(unknown) or 'nothing'}")
        if row["technique"] not in TECHNIQUES:
            raise RecordError(f"run record {name}, row {index}: unknown technique {row['technique']!r}; "
                              f"known: {', '.join(TECHNIQUES)}")


def anchor(title):
    """GitHub's anchor for a markdown heading (lower case, spaces to hyphens, punctuation dropped)."""
    kept = "".join(char for char in title.lower() if char.isalnum() or char in " -_")
    return kept.replace(" ", "-")


def _cell(value):
    return NOT_MEASURED if value is None else str(value).replace("|", "\\|")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _rows_of(records, technique):
    return [(name, row) for name, record in records for row in record["rows"] if row["technique"] == technique]


def render_results(records):
    """The whole of docs/results.md."""
    lines = [INTRO]
    lines.append("Nodes: " + ", ".join(f"[{title}](#{anchor(title)})" for key, title in TECHNIQUES.items()
                                       if _rows_of(records, key)) + "; [the runs](#runs).")
    for key, title in TECHNIQUES.items():
        rows = _rows_of(records, key)
        if not rows:
            continue
        lines += ["", f"## {title}", ""]
        lines += _table(("model", "setting", "baseline", "speedup", "quality", "work", "command"),
                        [(row["model"], row["setting"], row["baseline"], row["speedup"], row["quality"],
                          row["work"], f"[{name}](#{anchor(name)})") for name, row in rows])
    lines += ["", "## Runs", ""]
    for name, record in records:
        comfyui = f"ComfyUI {record['comfyui']}" if record["comfyui"] else "ComfyUI version not recorded"
        lines += [f"### {name}", "", "```", record["command"], "```", "",
                  f"{record['machine']}; {comfyui}; recorded {record['date']}. {record['protocol']}"]
        for note in record.get("notes", ()):
            lines += ["", note]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_readme_table(records):
    """The README's results table: the rows that carry a ``readme`` label, in node order, the node named once."""
    table = []
    for key, title in TECHNIQUES.items():
        rows = [row for _, row in _rows_of(records, key) if row.get("readme")]
        for index, row in enumerate(rows):
            node = "" if index else f"[{title}](docs/results.md#{anchor(title)})"
            table.append((node, row["setting"], row["readme"], row["baseline"], row["speedup"], row["quality"]))
    return "\n".join(_table(("node", "setting", "model", "against", "speedup", "quality"), table))


def readme_with_table(readme_text, records):
    """``readme_text`` with the part between the README markers replaced by the generated table."""
    start, end = readme_text.find(README_BEGIN), readme_text.find(README_END)
    if start < 0 or end < start:
        raise RecordError(f"README.md: the markers {README_BEGIN!r} and {README_END!r} are missing")
    head = readme_text[:start + len(README_BEGIN)]
    return head + "\n" + render_readme_table(records) + "\n" + readme_text[end:]


def expected_files(records_dir=RECORDS_DIR, readme=README):
    """{path: the text it should hold} for docs/results.md and README.md."""
    records = load_records(records_dir)
    return {RESULTS_MD: render_results(records),
            readme: readme_with_table(pathlib.Path(readme).read_text(encoding="utf-8"), records)}


# ---------------------------------------------------------------------------------------------------------------
# drafts from the bench's own JSON


def _format(value, digits, suffix=""):
    if value is None or value == "inf":
        return "identical" if value == "inf" else None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return f"{value:.{digits}f}{suffix}"


def draft_from_real_shapes(report):
    """Rows of ``bench/out/real_shapes.json``, two per variant: against the unpatched model and against SDPA."""
    rows = []
    for row in report["rows"]:
        if row["variant"] == "baseline":
            continue
        work = _format(row.get("ideal"), 2, "x")
        for baseline, speedup in ((BASELINE_COMFY_ATTENTION, row.get("speedup")),
                                  (BASELINE_SDPA, row.get("speedup_vs_sdpa"))):
            rows.append({"technique": row["technique"], "family": None, "model": row["case"],
                         "setting": row["variant"], "baseline": baseline, "speedup": _format(speedup, 2, "x"),
                         "quality": None, "work": work and f"ideal {work}"})
    return rows


def draft_from_bench(payload):
    """Rows of ``bench/out/bench.json`` (``python -m bench.run --bench ...``): every variant but the baseline."""
    rows = []
    for case in payload["cases"]:
        for result in case["results"]:
            if result["name"] == "baseline":
                continue
            psnr, ssim = _format(result.get("psnr_latent"), 1), _format(result.get("ssim_latent"), 3)
            skipped = result.get("work_skipped")
            rows.append({"technique": case.get("technique"), "family": case.get("family"), "model": case["title"],
                         "setting": result["name"], "baseline": "unpatched",
                         "speedup": _format(result.get("speedup"), 2, "x"),
                         "quality": psnr and (psnr if psnr == "identical" else f"latent PSNR {psnr} dB, SSIM {ssim}"),
                         "work": None if skipped is None else f"{skipped * 100:+.1f} % FLOPs skipped"})
    return rows


def draft_record(bench_json, comfyui, machine=MACHINE, date=None):
    """A run record to review, from a JSON file the bench wrote (``bench.json`` or ``real_shapes.json``)."""
    payload = json.loads(pathlib.Path(bench_json).read_text(encoding="utf-8"))
    if "cases" in payload:
        command, rows = payload["command"], draft_from_bench(payload)
        protocol = f"Medians of {payload['repeats']} interleaved timed runs."
    else:
        command, rows = "python -m bench.real_shapes", draft_from_real_shapes(payload)
        protocol = (f"{payload['dtype']} on {payload['device']}, {payload['threads']} threads, medians of "
                    f"{payload['selection']['repeats']} timed run(s) after one untimed run.")
    return {"command": command, "machine": machine, "comfyui": comfyui,
            "date": date or datetime.date.today().isoformat(), "protocol": protocol, "rows": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.results_doc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is stale")
    parser.add_argument("--draft", metavar="BENCH_JSON", help="write a draft run record from the bench's JSON")
    parser.add_argument("--comfyui", help="with --draft: the ComfyUI version the bench ran on")
    parser.add_argument("--machine", default=MACHINE, help=f"with --draft (default: {MACHINE!r})")
    parser.add_argument("--out", help="with --draft: the record file to write (default: stdout)")
    args = parser.parse_args(argv)
    if args.draft:
        if not args.comfyui:
            parser.error("--draft needs --comfyui VERSION (the version the bench ran on)")
        text = json.dumps(draft_record(args.draft, args.comfyui, args.machine), indent=2, ensure_ascii=False) + "\n"
        if args.out:
            pathlib.Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    stale = []
    for path, text in expected_files().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale, run python -m bench.results_doc: " + ", ".join(str(p.relative_to(PACK_ROOT)) for p in stale))
        return 1
    for path in stale:
        print(f"wrote {path.relative_to(PACK_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
