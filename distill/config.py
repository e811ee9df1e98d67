"""Frozen, typed configs: the cards (teacher, student, dataset) and the recipe's stage sections.

Each checks its own values in __post_init__; `distill.recipes` turns YAML into these and turns
a failed check into a one-line error naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The DeepSeek-R1 evaluation/generation prompt: no system prompt, this instruction after the problem.
# `{problem}` is replaced literally (no str.format), so templates need no brace escaping.
R1_USER_TEMPLATE = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."


DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")
TRAIN_METHODS = ("lora", "qlora", "full")
LOSS_ON = ("assistant", "last", "all")  # every assistant turn | the last one only | every token
DATA_MIX = ("concat", "interleave_under", "interleave_over", "interleave_once")  # LLaMA-Factory's mix_strategy
TRAIN_FORMATTING = ("auto", "alpaca", "sharegpt", "openai")
OVERLONG = ("truncate", "drop")
REPORT_TO = ("tensorboard", "wandb", "trackio")
SELECT_MODES = ("all", "first", "shortest")
QUOTA_BY = ("domain", "source")


class InvalidValue(ValueError):
    """Raised by a config's __post_init__; `build` turns it into a one-line ConfigError."""

    def __init__(self, field: str, value: Any, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field, self.value, self.message = field, value, message


def _require(ok: bool, field: str, value: Any, message: str) -> None:
    if not ok:
        raise InvalidValue(field, value, message)


def _one_of(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, field, value, f"must be one of {', '.join(allowed)}")


# ---------------------------------------------------------------- cards


@dataclass(frozen=True)
class GGUFSource:
    """Weights shipped as a GGUF file inside a Python package (converted once, then cached)."""

    package: str
    file: str


@dataclass(frozen=True)
class PromptTemplate:
    """How a problem becomes the teacher's chat prompt; `{problem}` in `user` is replaced."""

    system: str | None = None
    user: str = R1_USER_TEMPLATE
    think_prefix: bool = False  # start the assistant turn with "<think>\n" (R1's forced thinking)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768

    def __post_init__(self) -> None:
        _require(self.temperature >= 0, "temperature", self.temperature, "must be 0 or more")
        _require(0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        _require(self.max_tokens >= 1, "max_tokens", self.max_tokens, "must be at least 1")


@dataclass(frozen=True)
class TeacherCard:
    name: str
    model: str  # hub id or local folder; for the openai backend, the served model name
    revision: str | None = None
    backend: str = "auto"  # auto (vLLM when it imports, else transformers) | vllm | openai | hf
    gguf: GGUFSource | None = None
    dtype: str = "auto"
    template: PromptTemplate = PromptTemplate()
    sampling: Sampling = Sampling()
    engine: dict = field(default_factory=dict)  # vLLM: LLM(**engine) untouched; openai: see engines/openai.py
    description: str | None = None

    def __post_init__(self) -> None:
        _one_of("dtype", self.dtype, DTYPES)
        _require("{problem}" in self.template.user, "template.user", self.template.user, "must contain {problem}")


@dataclass(frozen=True)
class StudentCard:
    name: str
    model: str
    revision: str | None = None
    gguf: GGUFSource | None = None
    dtype: str = "auto"
    chat_template: str | None = None  # replaces the tokenizer's template when set
    max_length: int = 4096
    lora_target_modules: str | tuple[str, ...] = "all-linear"
    eos_token: str | None = None  # replaces the tokenizer's EOS when set (the turn end the template writes)
    rope_theta: float | None = None  # overrides the model config's RoPE base (open-r1: 300k for 32k context)
    rope_scaling: dict | None = None  # overrides the model config's rope_scaling (e.g. YaRN), as transformers takes it
    description: str | None = None

    def __post_init__(self) -> None:
        _one_of("dtype", self.dtype, DTYPES)
        _require(self.max_length >= 1, "max_length", self.max_length, "must be at least 1")
        _require(self.rope_theta is None or self.rope_theta > 0, "rope_theta", self.rope_theta, "must be positive")


@dataclass(frozen=True)
class ColumnMap:
    """Which source columns hold the problem, the gold answer and a stable id."""

    problem: str = "problem"
    answer: str | None = "answer"
    id: str | None = None


@dataclass(frozen=True)
class DatasetCard:
    name: str
    domain: str = "math"
    hub: str | None = None  # hub dataset id, loaded with datasets.load_dataset
    subset: str | None = None  # hub config name
    split: str = "train"
    path: str | None = None  # a local .jsonl / .json / .parquet / .csv file
    generator: str | None = None  # a prompt generator registered in distill.sources
    params: dict = field(default_factory=dict)  # generator arguments
    columns: ColumnMap = ColumnMap()
    answer_pattern: str | None = None  # regex on the answer column; group 1 is the gold answer
    description: str | None = None


# ---------------------------------------------------------------- recipe sections


@dataclass(frozen=True)
class DataSource:
    """One prompt source of a recipe: a dataset card, optionally pointed at a local file."""

    card: DatasetCard
    path: str | None = None
    split: str | None = None
    limit: int | None = None
    columns: ColumnMap | None = None  # for a local file laid out unlike the card's hub copy

    def __post_init__(self) -> None:
        _require(self.limit is None or self.limit >= 1, "limit", self.limit, "must be at least 1")


@dataclass(frozen=True)
class GenerateConfig:
    backend: str = "auto"  # auto | hf | fake (tests)
    n: int = 1  # samples per prompt
    temperature: float | None = None  # None: the teacher card's value
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int = 0
    shard_size: int = 256  # prompts per shard: the unit of resume and of scale-out
    batch_size: int = 16  # prompts per forward pass (transformers backend)
    limit: int | None = None  # first N prompts of the whole prompt set
    max_cost: float | None = None  # served teachers with prices: stop (resumably) once this is spent

    def __post_init__(self) -> None:
        _require(self.n >= 1, "n", self.n, "must be at least 1")
        _require(self.max_cost is None or self.max_cost >= 0, "max_cost", self.max_cost, "must be 0 or more")
        _require(self.temperature is None or self.temperature >= 0, "temperature", self.temperature, "must be 0 or more")
        _require(self.top_p is None or 0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        _require(self.max_tokens is None or self.max_tokens >= 1, "max_tokens", self.max_tokens, "must be at least 1")
        _require(self.shard_size >= 1, "shard_size", self.shard_size, "must be at least 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        _require(self.limit is None or self.limit >= 1, "limit", self.limit, "must be at least 1")


@dataclass(frozen=True)
class FilterConfig:
    # verification (distill/verify/): each verifier applies to the rows of its domains
    verifiers: tuple[str, ...] = ("format", "math", "choice", "code", "language", "repetition", "length")
    timeout: float = 5.0  # hard wall-clock limit per row, enforced by killing the worker
    workers: int = 0  # verifier processes; 0 = one per CPU core
    require_think: bool = False  # reject reasoning rows without a closed <think> block
    reject_truncated: bool = True  # reject finish_reason == "length"
    language_threshold: float = 0.05  # largest share of letters in another script than the prompt's
    repetition_ngram: int = 10  # word n-grams for the repetition check
    repetition_threshold: float = 0.2  # largest share of repeated n-grams
    min_tokens: int | None = None  # completion length bounds (teacher tokens)
    max_tokens: int | None = None
    code_timeout: float = 10.0  # seconds per test run of a code row
    code_memory_mb: int = 1024
    code_sandbox: str = "bwrap"  # bwrap | unsafe-no-isolation (docs/security.md)
    # dedup and decontamination (dedup.py)
    dedup: bool = True  # drop exact duplicates (normalised problem + completion)
    near_dedup: float | None = None  # Jaccard threshold for near-duplicate problems (MinHash LSH); None: off
    decontaminate: tuple[DataSource, ...] = ()  # benchmark cards whose problems must not leak in
    decontaminate_ngram: int = 8  # word n-gram size of the overlap test
    # selection (select.py)
    select: str = "all"  # per problem: all | first | shortest (correct samples)
    select_k: int = 1  # how many for first / shortest
    quota_by: str = "domain"  # domain | source: what `quotas` keys name
    quotas: dict = field(default_factory=dict)  # group -> rows (int) or share of target (float < 1)
    target: int | None = None  # total rows to keep, sampled uniformly under `seed`
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.timeout > 0, "timeout", self.timeout, "must be a positive number of seconds")
        _require(self.workers >= 0, "workers", self.workers, "must be 0 (one per core) or more")
        _require(0 <= self.language_threshold <= 1, "language_threshold", self.language_threshold, "must be in [0, 1]")
        _require(self.repetition_ngram >= 1, "repetition_ngram", self.repetition_ngram, "must be at least 1")
        _require(0 <= self.repetition_threshold <= 1, "repetition_threshold", self.repetition_threshold,
                 "must be in [0, 1]")
        _require(self.min_tokens is None or self.min_tokens >= 0, "min_tokens", self.min_tokens, "must be 0 or more")
        _require(self.max_tokens is None or self.max_tokens >= 1, "max_tokens", self.max_tokens, "must be at least 1")
        _require(self.min_tokens is None or self.max_tokens is None or self.min_tokens <= self.max_tokens,
                 "max_tokens", self.max_tokens, "must not be below min_tokens")
        _require(self.code_timeout > 0, "code_timeout", self.code_timeout, "must be a positive number of seconds")
        _require(self.code_memory_mb >= 64, "code_memory_mb", self.code_memory_mb, "must be at least 64")
        _require(self.code_sandbox in ("bwrap", "unsafe-no-isolation"), "code_sandbox", self.code_sandbox,
                 "must be bwrap or unsafe-no-isolation")
        _require(self.near_dedup is None or 0 < self.near_dedup < 1, "near_dedup", self.near_dedup,
                 "must be a Jaccard threshold in (0, 1), or null for off")
        _require(self.decontaminate_ngram >= 1, "decontaminate_ngram", self.decontaminate_ngram, "must be at least 1")
        _one_of("select", self.select, SELECT_MODES)
        _require(self.select_k >= 1, "select_k", self.select_k, "must be at least 1")
        _one_of("quota_by", self.quota_by, QUOTA_BY)
        _require(self.target is None or self.target >= 1, "target", self.target, "must be at least 1")
        for group, value in self.quotas.items():
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            _require(ok, f"quotas.{group}", value, "must be a row count, or a share of target below 1")
            # (a share of the target needs a target: checked with the whole recipe, since
            # `--set` overrides arrive one at a time)
            if not (isinstance(value, float) and value < 1):
                _require(float(value).is_integer(), f"quotas.{group}", value, "must be a whole row count")


CHAT_ROLES = ("system", "user", "assistant")
# LLaMA-Factory's tool turns: rows holding them are skipped (distill renders no tool calls)
TURN_ROLES = CHAT_ROLES + ("observation", "function")


@dataclass(frozen=True)
class TrainData:
    """One source of training conversations, named by the recipe (`train.data`): what open-r1's
    `dataset_name` / `dataset_mixture` and LLaMA-Factory's `dataset` become. Without it,
    `distill train --data IN` trains on the filter's output."""

    source: str  # a local Parquet/JSONL/JSON file or folder, a dataset card name, or a hub dataset id
    config: str | None = None  # hub config (subset)
    split: str | None = None  # None: train (a dataset card's own split for a card)
    columns: tuple[str, ...] | None = None  # keep only these columns first (open-r1's `columns`)
    weight: float | None = None  # share of the rows kept, drawn under train.data_seed (open-r1's `weight`)
    limit: int | None = None  # the first N rows only (LLaMA-Factory's `max_samples`)
    num_samples: int | None = None  # N rows drawn under train.data_seed, repeating rows past the source's size
    data_dir: str | None = None  # a hub dataset's folder (LLaMA-Factory's `folder`)
    # auto: chat `messages`, ShareGPT `conversations`, or prompt/response columns; alpaca, sharegpt
    # and openai: LLaMA-Factory's formattings, converted as LLaMA-Factory converts them
    formatting: str = "auto"
    messages: str | None = None  # column holding the conversation; None: `messages`, else `conversations`
    system: str | None = None  # column with the system prompt; None: `system` when the row has one (auto)
    prompt: str | None = None  # or a conversation built from a prompt column,
    query: str | None = None  # alpaca: a second part of the prompt, joined to it with a newline
    history: str | None = None  # alpaca: earlier [prompt, response] pairs, as earlier turns
    reasoning: str | None = None  # an optional reasoning column (written as <think>…</think>)
    response: str | None = None  # and a response column
    role_tag: str = "from"  # ShareGPT turn keys (LLaMA-Factory's tags)
    content_tag: str = "value"
    roles: dict = field(default_factory=dict)  # ShareGPT speaker -> system/user/assistant, beyond human/gpt/…

    def __post_init__(self) -> None:
        _require(bool(self.source), "source", self.source, "must name a file, folder, card or hub dataset")
        _require(self.weight is None or 0 < self.weight <= 1, "weight", self.weight, "must be in (0, 1]")
        _require(self.limit is None or self.limit >= 1, "limit", self.limit, "must be at least 1")
        _require(self.num_samples is None or self.num_samples >= 1, "num_samples", self.num_samples,
                 "must be at least 1")
        _one_of("formatting", self.formatting, TRAIN_FORMATTING)
        _require((self.prompt is None) == (self.response is None) or self.formatting == "alpaca", "response",
                 self.response, "and prompt must be given together")
        for speaker, role in self.roles.items():
            _require(role in TURN_ROLES, f"roles.{speaker}", role, f"must be one of {', '.join(TURN_ROLES)}")


@dataclass(frozen=True)
class TrainConfig:
    method: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int | None = None  # None: the student card's max_length
    warmup_ratio: float = 0.0
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    seed: int = 42
    logging_steps: float = 1  # below 1: a share of the total steps (transformers' reading)
    gradient_checkpointing: bool = False
    dtype: str = "auto"  # auto: bf16 on a GPU that supports it, else fp32
    loss_on: str = "assistant"  # assistant: the teacher's turn only; all: the whole sequence (open-r1's way)
    save_steps: float = 500  # a checkpoint every N optimizer steps, for --resume; below 1: a share of the steps
    save_total_limit: int = 2  # checkpoints kept
    overlong: str = "truncate"  # conversations longer than max_length: truncate (TRL's way) or drop
    lora_target_modules: str | tuple[str, ...] | None = None  # None: the student card's
    max_grad_norm: float = 1.0
    lr_scheduler_kwargs: dict = field(default_factory=dict)  # e.g. {min_lr_rate: 0.1} for cosine_with_min_lr
    packing: bool = False  # padding-free packing with position_ids (needs an attention that honours them)
    # batches of rows of like length (transformers' LengthGroupedSampler): less padding, hence
    # faster steps; None: on unless packing (no padding to save) or batch_size 1 (nothing to group)
    group_by_length: bool | None = None
    attn_implementation: str | None = None  # None: flash_attention_2 on a GPU when installed, else sdpa
    # Liger kernels, opt-in as in TRL (Liger with LoRA on some models fails upstream); None: off
    liger: bool | None = None
    report_to: tuple[str, ...] = ()  # tensorboard | wandb | trackio; () logs to the console only
    push_to_hub: bool = False  # push the trained student to hub_model_id
    hub_model_id: str | None = None
    trl: dict = field(default_factory=dict)  # further SFTConfig arguments, passed to TRL untouched
    data: tuple[TrainData, ...] = ()  # training conversations named by the recipe; --data replaces them
    data_seed: int = 0  # shuffles a mixture and draws its `weight` shares (open-r1's dataset_mixture.seed)
    data_mix: str = "concat"  # several sources: concat (then shuffled), or interleaved (LLaMA-Factory's mix_strategy)
    data_mix_probs: tuple[float, ...] = ()  # interleaving probabilities, one per source (interleave_probs)
    qlora_double_quant: bool = True  # qlora: quantize the quantization constants too (LLaMA-Factory's double_quantization)

    def __post_init__(self) -> None:
        _one_of("method", self.method, TRAIN_METHODS)
        _require(self.lora_r >= 1, "lora_r", self.lora_r, "must be at least 1")
        _require(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "must be positive")
        _require(0 <= self.lora_dropout < 1, "lora_dropout", self.lora_dropout, "must be in [0, 1)")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be positive")
        _require(self.epochs > 0, "epochs", self.epochs, "must be positive")
        _require(self.max_steps == -1 or self.max_steps >= 1, "max_steps", self.max_steps, "must be -1 (off) or at least 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        _require(self.grad_accum >= 1, "grad_accum", self.grad_accum, "must be at least 1")
        _require(self.max_length is None or self.max_length >= 1, "max_length", self.max_length, "must be at least 1")
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "must be in [0, 1)")
        _one_of("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be 0 or more")
        _require(self.logging_steps > 0 and (self.logging_steps < 1 or float(self.logging_steps).is_integer()),
                 "logging_steps", self.logging_steps, "must be a whole number of steps, or a share of them below 1")
        _one_of("dtype", self.dtype, DTYPES)
        _one_of("loss_on", self.loss_on, LOSS_ON)
        _one_of("overlong", self.overlong, OVERLONG)
        _require(self.save_steps > 0 and (self.save_steps < 1 or float(self.save_steps).is_integer()),
                 "save_steps", self.save_steps, "must be a whole number of steps, or a share of them below 1")
        _require(self.save_total_limit >= 1, "save_total_limit", self.save_total_limit, "must be at least 1")
        _require(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be positive")
        for target in self.report_to:
            _one_of("report_to", target, REPORT_TO)
        _require(not self.push_to_hub or bool(self.hub_model_id), "hub_model_id", self.hub_model_id,
                 "must name the hub repository when push_to_hub is true")
        _one_of("data_mix", self.data_mix, DATA_MIX)
        _require(not self.data_mix_probs or len(self.data_mix_probs) == len(self.data), "data_mix_probs",
                 list(self.data_mix_probs), "must give one probability per train.data source")
        _require(all(p >= 0 for p in self.data_mix_probs) and (not self.data_mix_probs or sum(self.data_mix_probs) > 0),
                 "data_mix_probs", list(self.data_mix_probs), "must be non-negative and not all 0")



@dataclass(frozen=True)
class BenchmarkOptions:
    """One benchmark: `--set benchmarks.NAME.KEY=…` for `distill eval`, an entry of a recipe's
    `eval.benchmarks` (where `name` is required: a benchmark, a dataset card or a card .yaml)."""

    name: str | None = None
    path: str | None = None  # a local copy instead of the hub
    split: str | None = None
    limit: int | None = None  # first N problems
    n: int | None = None  # samples per problem; None: the eval section's n, else the benchmark's default
    columns: ColumnMap | None = None

    def __post_init__(self) -> None:
        _require(self.n is None or self.n >= 1, "n", self.n, "must be at least 1")
        _require(self.limit is None or self.limit >= 1, "limit", self.limit, "must be at least 1")


@dataclass(frozen=True)
class EvalConfig:
    """The protocol (the R1 paper's by default) and how the work is cut: `distill eval` flags and
    `--set eval.KEY=…`, or a recipe's `eval:` section, whose `benchmarks` make `distill run`
    evaluate the student it trained (none: the run stops after training)."""

    backend: str = "auto"  # auto (vLLM when it imports, else transformers) | vllm | hf | openai
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    seed: int = 0
    n: int | None = None  # samples per problem for every benchmark; None: each benchmark's default
    limit: int | None = None  # first N problems of every benchmark
    shard_size: int = 16  # problems per shard: the unit of resume
    batch_size: int = 16  # prompts per forward pass (transformers backend)
    workers: int = 0  # verifier processes; 0: one per core
    timeout: float = 5.0  # seconds per verdict, enforced by killing the worker
    engine: dict = field(default_factory=dict)  # vLLM engine arguments over the model card's (max_model_len, …)
    benchmarks: tuple[BenchmarkOptions, ...] = ()  # a recipe's benchmarks, for `distill run`

    def __post_init__(self) -> None:
        _require(self.temperature >= 0, "temperature", self.temperature, "must be 0 or more")
        _require(0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        _require(self.max_tokens >= 1, "max_tokens", self.max_tokens, "must be at least 1")
        _require(self.n is None or self.n >= 1, "n", self.n, "must be at least 1")
        _require(self.limit is None or self.limit >= 1, "limit", self.limit, "must be at least 1")
        _require(self.shard_size >= 1, "shard_size", self.shard_size, "must be at least 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        _require(self.workers >= 0, "workers", self.workers, "must be 0 (one per core) or more")
        _require(self.timeout > 0, "timeout", self.timeout, "must be a positive number of seconds")
        names = [b.name for b in self.benchmarks]
        for i, name in enumerate(names):
            _require(bool(name), f"benchmarks.{i}.name", name, "must name a benchmark (e.g. gsm8k-test) or a dataset card")
        twice = next((x for i, x in enumerate(names) if x in names[:i]), None)
        _require(twice is None, "benchmarks", twice, "names a benchmark twice")


@dataclass(frozen=True)
class Recipe:
    name: str
    teacher: TeacherCard | None = None
    student: StudentCard | None = None
    data: tuple[DataSource, ...] = ()
    generate: GenerateConfig = GenerateConfig()
    filter: FilterConfig = FilterConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    description: str | None = None
