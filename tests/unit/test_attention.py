"""kernels.attention: every backend usable here agrees with the explicit-softmax "math" reference."""
import logging

import pytest
import torch

from freeaccel.kernels import attention as attn_mod
from freeaccel.kernels.attention import (BACKENDS, attention, available_backends, merge_heads, resolve_backend,
                                         split_heads)

B, H, LQ, LK, D = 2, 3, 37, 29, 16


def _qkv(dtype=torch.float32, device="cpu", lq=LQ, lk=LK):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, lq, D, generator=g)
    k = torch.randn(B, H, lk, D, generator=g)
    v = torch.randn(B, H, lk, D, generator=g)
    return tuple(t.to(device=device, dtype=dtype) for t in (q, k, v))


def _bool_mask(shape):
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(1)) > 0.5
    mask[..., 0] = True  # no fully masked query row (its softmax is undefined)
    return mask


def _additive_mask(shape):
    g = torch.Generator().manual_seed(2)
    mask = torch.randn(shape, generator=g)
    mask[torch.rand(shape, generator=g) > 0.7] = float("-inf")
    mask[..., 0] = 0.0
    return mask


def _band(b, h, q_idx, kv_idx):
    """A mask that depends on the head: a diagonal band, widened on head 1, plus key 0 (so no row is empty)."""
    return ((q_idx - kv_idx).abs() <= 3 + 4 * (h == 1)) | (kv_idx == 0)


def _usable_on_cpu(name):
    reason = available_backends("cpu")[name]
    if reason is not None:
        pytest.skip(f"{name} unusable on CPU: {reason}")


@pytest.fixture(scope="module", autouse=True)
def _roomy_compile_cache():
    # every mask layout here is another static CPU flex compile; past dynamo's limit flex would run uncompiled
    with torch._dynamo.config.patch(recompile_limit=64):
        yield
    torch._dynamo.reset()  # leave no compiled entries behind to use up later modules' recompile budget


@pytest.fixture(autouse=True)
def _fresh_log_state(monkeypatch):
    monkeypatch.setattr(attn_mod, "_logged", set())


@pytest.mark.parametrize("backend", BACKENDS)
def test_unmasked_matches_math(backend):
    _usable_on_cpu(backend)
    q, k, v = _qkv()
    out = attention(q, k, v, backend=backend)
    assert out.shape == (B, H, LQ, D)
    torch.testing.assert_close(out, attention(q, k, v, backend="math"), atol=1e-5, rtol=0)


def test_math_is_explicit_softmax_with_scale():
    q, k, v = _qkv()
    probs = torch.softmax(q.double() @ k.double().transpose(-1, -2) * 0.3, dim=-1)
    torch.testing.assert_close(attention(q, k, v, backend="math", scale=0.3), (probs @ v.double()).float(),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(LQ, LK), (B, 1, LQ, LK), (B, H, 1, LK)], ids=["2d", "per-batch", "row-bcast"])
@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_masked_matches_math(backend, shape, kind):
    _usable_on_cpu(backend)
    q, k, v = _qkv()
    mask = _bool_mask(shape) if kind == "bool" else _additive_mask(shape)
    out = attention(q, k, v, backend=backend, mask=mask)
    torch.testing.assert_close(out, attention(q, k, v, backend="math", mask=mask), atol=1e-5, rtol=0)


def test_bool_and_additive_masks_agree():
    q, k, v = _qkv()
    allowed = _bool_mask((B, H, LQ, LK))
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
    torch.testing.assert_close(attention(q, k, v, backend="math", mask=allowed),
                               attention(q, k, v, backend="math", mask=additive), atol=0, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_mod_in_chunks_equals_dense_mask(backend, monkeypatch):
    _usable_on_cpu(backend)
    q, k, v = _qkv()
    # room for 5 rows of a [1, H, rows, LK] mask: 37 query rows become 8 chunks, the last one ragged
    monkeypatch.setattr(attn_mod, "MASK_CHUNK_ELEMENTS", H * LK * 5 + 7)
    rows_seen = []

    def band(b, h, q_idx, kv_idx):
        rows_seen.append(q_idx.numel())
        return _band(b, h, q_idx, kv_idx)

    dense = _band(torch.arange(B).view(-1, 1, 1, 1), torch.arange(H).view(1, -1, 1, 1),
                  torch.arange(LQ).view(1, 1, -1, 1), torch.arange(LK).view(1, 1, 1, -1))
    # flex traces mask_mod into its compiled kernel, so it gets the side-effect-free band (and 128-row chunks)
    out = attention(q, k, v, backend=backend, mask_mod=_band if backend == "flex" else band)
    torch.testing.assert_close(out, attention(q, k, v, backend="math", mask=dense), atol=1e-5, rtol=0)
    if backend != "flex":  # one row to size the chunks, then chunks of at most 5 rows
        assert max(rows_seen) == 5 and sum(rows_seen) == 1 + LQ


@pytest.mark.parametrize("backend", ["sdpa", "flex", "math"])
@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_mask_mod_combines_with_mask(backend, kind, monkeypatch):
    _usable_on_cpu(backend)
    monkeypatch.setattr(attn_mod, "MASK_CHUNK_ELEMENTS", H * LK * 4)
    q, k, v = _qkv()
    shape = (B, 1, LQ, LK)
    mask = _bool_mask(shape) if kind == "bool" else _additive_mask(shape)
    band = _band(torch.arange(B).view(-1, 1, 1, 1), torch.arange(H).view(1, -1, 1, 1),
                 torch.arange(LQ).view(1, 1, -1, 1), torch.arange(LK).view(1, 1, 1, -1))
    both = mask & band if kind == "bool" else mask.masked_fill(~band, float("-inf"))
    out = attention(q, k, v, backend=backend, mask=mask, mask_mod=_band)
    torch.testing.assert_close(out, attention(q, k, v, backend="math", mask=both), atol=1e-5, rtol=0)


def test_flex_block_mask_matches_create_block_mask(monkeypatch):
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    monkeypatch.setattr(attn_mod, "MASK_CHUNK_ELEMENTS", 128 * 250)  # one 128-row block per chunk

    def windows(b, h, q_idx, kv_idx):
        return ((q_idx // 40 - kv_idx // 40).abs() <= 1) | ((h == 1) & (kv_idx < 10))

    ours = attn_mod._build_block_mask(windows, 2, 3, 300, 250, "cpu")
    ref = flex.create_block_mask(windows, None, 3, 300, 250, device="cpu")
    assert ours.shape == ref.shape == (1, 3, 300, 250)
    for field in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"):
        assert torch.equal(getattr(ours, field), getattr(ref, field)), field


def test_block_mask_reused_for_same_mask_mod_and_shape():
    pytest.importorskip("torch.nn.attention.flex_attention")
    first = attn_mod._block_mask(_band, B, H, LQ, LK, "cpu")
    assert attn_mod._block_mask(_band, B, H, LQ, LK, torch.device("cpu")) is first
    assert attn_mod._block_mask(_band, B, H, LQ, LK + 1, "cpu") is not first


def test_math_computes_in_fp32_and_keeps_dtype():
    q, k, v = _qkv(torch.bfloat16)
    out = attention(q, k, v, backend="math")
    assert out.dtype == torch.bfloat16
    ref = attention(q.float(), k.float(), v.float(), backend="math")
    assert torch.equal(out, ref.to(torch.bfloat16))


def test_sdpa_accepts_float_mask_of_other_dtype():
    q, k, v = _qkv(torch.bfloat16)
    mask = _additive_mask((LQ, LK))  # fp32 mask, bf16 queries, as ComfyUI passes them
    out = attention(q, k, v, backend="sdpa", mask=mask)
    torch.testing.assert_close(out.float(), attention(q, k, v, backend="math", mask=mask).float(), atol=2e-2, rtol=0)


def test_auto_on_cpu_is_sdpa():
    assert resolve_backend("auto", "cpu") == "sdpa"
    assert resolve_backend("auto", torch.device("cpu")) == "sdpa"


def test_available_backends_reports_reasons():
    found = available_backends("cpu")
    assert set(found) == set(BACKENDS)
    assert found["sdpa"] is None and found["math"] is None
    assert found["xformers"] == "xformers needs a CUDA device (got cpu)"
    assert found["sage"] == "sage needs a CUDA device (got cpu)"


@pytest.mark.parametrize("name", ["xformers", "sage"])
def test_cuda_only_backend_on_cpu_raises_naming_installed(name):
    with pytest.raises(ValueError) as err:
        resolve_backend(name, "cpu")
    message = str(err.value)
    assert f"attention backend {name!r} cannot run on cpu: {name} needs a CUDA device" in message
    assert "Installed backends: sdpa, math" in message
    assert ("flex" in message.split("Installed backends:")[1]) == (attn_mod._import_error(
        "torch.nn.attention.flex_attention") is None)


def test_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(attn_mod.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(attn_mod, "_import_error", lambda module: f"{module} does not import (ModuleNotFoundError)")
    with pytest.raises(ValueError, match=r"'xformers' cannot run on cuda: xformers.ops does not import"):
        resolve_backend("xformers", "cuda")
    assert resolve_backend("auto", "cuda") == "sdpa"


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match=r"unknown attention backend 'flash'; choose one of: auto, sdpa, xformers"):
        resolve_backend("flash", "cpu")


def test_unusable_flex_falls_back_to_sdpa_logging_once(monkeypatch, caplog):
    if attn_mod._import_error("torch.nn.attention.flex_attention") is not None:
        pytest.skip("flex_attention does not import in this torch")
    monkeypatch.setitem(attn_mod._flex_probe, "cpu", "flex probe failed: forced by the test")
    q, k, v = _qkv()
    mask = _bool_mask((LQ, LK))
    with caplog.at_level(logging.WARNING):
        assert resolve_backend("flex", "cpu") == "sdpa"
        out = attention(q, k, v, backend="flex", mask=mask)
        attention(q, k, v, backend="flex")
    warnings = [r for r in caplog.records if "flex attention is unusable" in r.getMessage()]
    assert len(warnings) == 1
    assert "forced by the test" in warnings[0].getMessage() and warnings[0].levelno == logging.WARNING
    torch.testing.assert_close(out, attention(q, k, v, backend="sdpa", mask=mask), atol=0, rtol=0)


def test_flex_probe_runs_once_per_device(monkeypatch):
    if attn_mod._import_error("torch.nn.attention.flex_attention") is not None:
        pytest.skip("flex_attention does not import in this torch")
    calls = []
    monkeypatch.setattr(attn_mod, "_flex_probe", {})
    monkeypatch.setattr(attn_mod, "_probe_flex", lambda device_type: calls.append(device_type) or "nope")
    for _ in range(3):
        assert available_backends("cpu")["flex"] == "nope"
        resolve_backend("flex", "cpu")
    assert calls == ["cpu"]


def test_sage_masked_or_fp32_calls_use_sdpa(monkeypatch, caplog):
    """The guard in front of sageattn (CUDA-only) exercised on CPU with sage faked as usable."""
    real_unusable = attn_mod._unusable
    monkeypatch.setattr(attn_mod, "_unusable", lambda name, dt: None if name == "sage" else real_unusable(name, dt))
    monkeypatch.setitem(attn_mod._KERNELS, "sage", lambda *args: pytest.fail("sageattn got a call it cannot take"))
    q, k, v = _qkv()
    mask = _bool_mask((LQ, LK))
    with caplog.at_level(logging.WARNING):
        out = attention(q, k, v, backend="sage", mask=mask)
        attention(q, k, v, backend="sage")
    torch.testing.assert_close(out, attention(q, k, v, backend="sdpa", mask=mask), atol=0, rtol=0)
    assert sum("sage attention takes no mask" in r.getMessage() for r in caplog.records) == 1


def test_split_and_merge_heads_round_trip():
    x = torch.randn(2, 7, 3 * 4)
    split = split_heads(x, 3)
    assert split.shape == (2, 3, 7, 4)
    assert torch.equal(split[:, 1, 5], x[:, 5, 4:8])
    assert torch.equal(merge_heads(split), x)


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["xformers", "sage", "flex"])
@pytest.mark.parametrize("masked", [False, True])
def test_cuda_backend_matches_sdpa(backend, masked):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    reason = available_backends("cuda")[backend]
    if reason is not None:
        pytest.skip(f"{backend} unusable on CUDA: {reason}")
    q, k, v = _qkv(torch.float16, "cuda", lq=256, lk=192)
    q, k, v = (torch.cat([t] * 4, dim=-1) for t in (q, k, v))  # head dim 64: every kernel supports it
    mask = _bool_mask((256, 192)).cuda() if masked else None
    out = attention(q, k, v, backend=backend, mask=mask)
    ref = attention(q.float(), k.float(), v.float(), backend="sdpa", mask=mask)
    # sage quantises q and k to int8, the others run in fp16
    torch.testing.assert_close(out.float(), ref, atol=5e-2 if backend == "sage" else 5e-3, rtol=0)


@pytest.mark.cuda
def test_cuda_mask_mod_on_flex_and_xformers_match_math():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    q, k, v = _qkv(torch.float16, "cuda", lq=300, lk=300)
    q, k, v = (torch.cat([t] * 4, dim=-1) for t in (q, k, v))
    ref = attention(q, k, v, backend="math", mask_mod=_band)
    usable = [name for name in ("flex", "xformers") if available_backends("cuda")[name] is None]
    if not usable:
        pytest.skip("neither flex nor xformers is usable on CUDA")
    for backend in usable:
        torch.testing.assert_close(attention(q, k, v, backend=backend, mask_mod=_band).float(), ref.float(),
                                   atol=5e-3, rtol=0)
