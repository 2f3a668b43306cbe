"""bench.benchmark.format_summary: one technique across several inputs, a row per variant, a column per input."""
import math

import pytest

from bench.benchmark import VariantResult, format_summary, format_table


def _case(motion, speedups, psnrs, skipped):
    results = [VariantResult(name, speedup=s, psnr_latent=p, work_skipped=w)
               for name, s, p, w in zip(("baseline", "AdaCache fast"), speedups, psnrs, skipped)]
    return {"motion": motion, "results": results}


def test_rows_are_variants_and_columns_are_cases():
    cases = [_case("static", (1.0, 3.2), (math.inf, 41.26), (0.0, 0.684)),
             _case("fast", (1.0, 1.5), (math.inf, 30.04), (0.0, 0.2))]
    lines = format_summary("AdaCache on trained WAN", cases, "motion").splitlines()
    assert lines[0] == "AdaCache on trained WAN (speedup / PSNR dB / FLOPs skipped)"
    assert lines[1].split() == ["variant", "static", "fast", "median", "speedup", "worst", "dB", "median", "dB"]
    assert lines[3].split() == ["baseline", "1.00x", "/", "inf", "/", "0%", "1.00x", "/", "inf", "/", "0%",
                                "1.00x", "inf", "inf"]
    # the last three: median speedup over the cases, worst (lowest) and median PSNR
    assert lines[4].split()[2:] == ["3.20x", "/", "41.3", "/", "68%", "1.50x", "/", "30.0", "/", "20%",
                                    "2.35x", "30.0", "35.6"]


def test_uncounted_flops_read_n_a():
    cases = [_case("static", (1.0, 0.9), (math.inf, 130.0), (0.0, math.nan))]
    assert format_summary("t", cases, "motion").splitlines()[4].split()[2:7] == ["0.90x", "/", "130.0", "/", "n/a"]


def test_cases_must_share_their_variants():
    other = {"motion": "fast", "results": [VariantResult("baseline"), VariantResult("LazyCache")]}
    with pytest.raises(ValueError, match="same variants"):
        format_summary("t", [_case("static", (1, 2), (math.inf, 30), (0, 0.5)), other], "motion")


def test_long_variant_names_are_never_cut():
    name = "TemporalAttnPrune identity 0.25 (calibrated)"  # 44 characters: a cut once turned 0.25 into 0.2
    results = [VariantResult("baseline", speedup=1.0, psnr_latent=math.inf, work_skipped=0.0),
               VariantResult(name, speedup=1.2, psnr_latent=40.0, work_skipped=0.1)]
    summary = format_summary("t", [{"motion": "static", "results": results}], "motion").splitlines()
    assert summary[4].startswith(name + " ")
    table = format_table("t", results).splitlines()
    assert table[4].startswith(name + " ") and table[1].index("median s") > len(name)
