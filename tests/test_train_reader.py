"""Reader training: the artifact round trip, optimiser groups, the trimmed source, a resumable run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from index.e5_convert import read_e5, source_path
from qa.reader_artifact import FROZEN, apply_artifact, pack_artifact, read_artifact_meta
from qa.squad import SquadItem, make_removed_negatives
from qa.train_reader import TrainConfig, checkpoint_path, param_groups, train, trim_source


def tiny_qa():
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    return BertForQuestionAnswering(cfg)


def test_artifact_round_trip_with_trained_embedding_rows(tmp_path):
    model = tiny_qa()
    base = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    trained = {k: torch.from_numpy(v.copy()) for k, v in base.items()}
    emb = FROZEN[0]
    trained[emb][[3, 17]] += 0.05 * torch.randn(2, 32)  # two rows "seen in training"
    trained["bert.encoder.layer.1.output.dense.weight"] += 0.01 * torch.randn(32, 64)
    base_no_head = {k: v for k, v in base.items() if not k.startswith("qa_outputs")}
    pack_artifact(trained, base_no_head, {"dev_f1": 1.0}, tmp_path / "a.zip")

    kinds = {t["name"]: t["kind"] for t in read_artifact_meta(tmp_path / "a.zip")["tensors"]}
    assert kinds[emb] == "rows_delta_int8" and kinds["qa_outputs.weight"] == "full"
    out, _ = apply_artifact(base_no_head, tmp_path / "a.zip")
    untouched = [i for i in range(60) if i not in (3, 17)]
    assert np.array_equal(out[emb][untouched], base[emb][untouched])  # unchanged rows are exact
    for name in (emb, "bert.encoder.layer.1.output.dense.weight"):
        err = np.abs(out[name] - trained[name].numpy()).max()
        step = np.abs(trained[name].numpy() - base[name]).max() / 127
        assert err <= step * 0.51 + 1e-7  # int8 rounding: at most half a step per row
    assert np.array_equal(out["qa_outputs.weight"], trained["qa_outputs.weight"].numpy())


def test_frozen_embeddings_are_not_shipped(tmp_path):
    model = tiny_qa()
    base = {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if not k.startswith("qa_outputs")}
    pack_artifact(model.state_dict(), base, {}, tmp_path / "a.zip")
    assert FROZEN[0] not in {t["name"] for t in read_artifact_meta(tmp_path / "a.zip")["tensors"]}


def test_param_groups_decay_and_layer_lr():
    model = tiny_qa()
    for p in model.parameters():
        p.requires_grad = True
    cfg = TrainConfig(lr=1e-3, weight_decay=0.01, layer_lr_decay=0.5)
    groups = param_groups(model, cfg, n_layers=2)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named[FROZEN[0]])]["weight_decay"] == 0.0  # AdamW must not shrink unseen rows
    assert by_param[id(named["bert.encoder.layer.0.attention.self.query.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["qa_outputs.weight"])]["lr"] == pytest.approx(1e-3)
    assert by_param[id(named["bert.encoder.layer.1.output.dense.weight"])]["lr"] == pytest.approx(5e-4)
    assert by_param[id(named["bert.encoder.layer.0.output.dense.weight"])]["lr"] == pytest.approx(2.5e-4)
    assert by_param[id(named[FROZEN[0]])]["lr"] == pytest.approx(1.25e-4)
    assert sum(len(g["params"]) for g in groups) == len(named)


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory, embedder):
    out = tmp_path_factory.mktemp("trim") / "e5.bin"
    texts = ["Netflix investit 7 milliards de dollars.", "Qui dirige le contenu ?"]
    info = trim_source(texts, out)
    return out, texts, info


def test_trimmed_source_keeps_what_the_texts_use(trimmed, embedder):
    out, texts, info = trimmed
    full, small = read_e5(source_path()), read_e5(out)
    h = full.config["hidden_size"]
    used = set(full.special.values())
    for t in texts:
        used.update(embedder.tokenizer(t, add_special_tokens=False)["input_ids"])
    assert info["used_tokens"] == len(used)
    fw, sw = full.tensors["emb.word"].reshape(-1, h), small.tensors["emb.word"].reshape(-1, h)
    rows = sorted(used)
    assert np.array_equal(fw[rows], sw[rows])
    assert not sw[[i for i in range(1000) if i not in used]].any()  # others zeroed
    for name, arr in full.tensors.items():
        if name != "emb.word":
            assert np.array_equal(arr, small.tensors[name]), name
    assert small.pieces == full.pieces


def test_removed_negatives_take_out_the_answer_sentence():
    import random

    ctx = "Netflix est né en Californie. Il a investi 7 milliards de dollars en 2018. Le service compte 130 millions d'abonnés."
    items = [
        SquadItem("a", "Combien Netflix a-t-il investi en 2018 ?", ctx, "Netflix", [{"text": "7 milliards de dollars", "answer_start": ctx.index("7 milliards")}]),
        # the answer is also in another sentence: no clean negative can be made
        SquadItem("b", "Où est né Netflix ?", "Netflix est né en Californie. La Californie est un État.", "Netflix", [{"text": "Californie", "answer_start": 18}]),
        # a single sentence would leave nothing on topic
        SquadItem("c", "Quand ?", "Il a investi en 2018.", "Netflix", [{"text": "2018", "answer_start": 16}]),
    ]
    out = make_removed_negatives(items, 1.0, random.Random(0))
    assert [o.qid for o in out] == ["a-removed"]
    assert out[0].context == "Netflix est né en Californie. Le service compte 130 millions d'abonnés."
    assert out[0].answers == [] and out[0].question == items[0].question


def _tiny_squad(path: Path) -> Path:
    data = {"data": [
        {"title": "Netflix", "paragraphs": [{"context": "Netflix a investi 7 milliards de dollars en 2018 dans ses contenus originaux.", "qas": [
            {"id": "n1", "question": "Combien Netflix a-t-il investi en 2018 ?", "answers": [{"text": "7 milliards de dollars", "answer_start": 18}]},
            {"id": "n2", "question": "En quelle année Netflix a-t-il investi 7 milliards ?", "answers": [{"text": "2018", "answer_start": 44}]}]}]},
        {"title": "Paris", "paragraphs": [{"context": "Paris est la capitale de la France depuis le Moyen Âge.", "qas": [
            {"id": "p1", "question": "Quelle est la capitale de la France ?", "answers": [{"text": "Paris", "answer_start": 0}]}]}]},
    ]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_training_run_writes_artifact_and_resumes(tmp_path, trimmed, caplog, embedder):
    squad = _tiny_squad(tmp_path / "tiny.json")
    src = tmp_path / "src.bin"
    items = json.loads(squad.read_text())["data"]
    texts = [p["context"] for a in items for p in a["paragraphs"]] + [q["question"] for a in items for p in a["paragraphs"] for q in p["qas"]]
    trim_source(texts, src)
    cfg = TrainConfig(train_file=squad, dev_file=squad, run_dir=tmp_path / "run", out_artifact=tmp_path / "r.zip", epochs=1, batch_size=2,
                      negative_ratio=0.5, device="cpu", source=str(src), checkpoint_every=1, length_penalty=0.05)
    train(cfg)
    meta = read_artifact_meta(cfg.out_artifact)
    assert meta["step"] == 2 and 0.0 <= meta["dev_f1"] <= 100.0
    # the reader decodes as its dev numbers were measured (Reader takes length_penalty from the metadata)
    assert meta["length_penalty"] == 0.05
    from qa.model_card import write_model_card

    assert "less 0.05 per token" in write_model_card(cfg.out_artifact).read_text()
    assert (cfg.out_artifact.parent / "r.zip.sha256").read_text().split()[0]
    assert (cfg.run_dir / "last.pt").is_file()
    # a rerun finds the finished checkpoint and does not train again
    caplog.set_level("INFO", logger="qa.train_reader")
    train(cfg)
    assert any("resumed from" in r.getMessage() and "step 2/2" in r.getMessage() for r in caplog.records)


def test_a_run_stopped_while_saving_a_checkpoint_keeps_the_last_whole_one_only(tmp_path, trimmed, embedder, monkeypatch, caplog):
    squad = _tiny_squad(tmp_path / "tiny.json")
    src = tmp_path / "src.bin"
    items = json.loads(squad.read_text())["data"]
    trim_source([p["context"] for a in items for p in a["paragraphs"]] + [q["question"] for a in items for p in a["paragraphs"] for q in p["qas"]], src)
    cfg = TrainConfig(train_file=squad, dev_file=squad, run_dir=tmp_path / "run", out_artifact=tmp_path / "r.zip", epochs=1, batch_size=2,
                      device="cpu", source=str(src), checkpoint_every=1)
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 2:  # Ctrl-C halfway through writing the second checkpoint
            Path(f).write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    assert sorted(p.name for p in cfg.run_dir.iterdir()) == ["last.pt"]  # no 'last.tmp' of 150 MB left beside it
    monkeypatch.setattr(torch, "save", real_save)
    caplog.set_level("INFO", logger="qa.train_reader")
    train(cfg)  # the same command resumes from the whole checkpoint
    assert any("resumed from" in r.getMessage() and str(checkpoint_path(cfg.run_dir)) in r.getMessage() and "step 1/" in r.getMessage() for r in caplog.records)


def test_training_continues_from_an_artifact(tmp_path, trimmed, embedder):
    squad = _tiny_squad(tmp_path / "tiny.json")
    src = tmp_path / "src.bin"
    items = json.loads(squad.read_text())["data"]
    trim_source([p["context"] for a in items for p in a["paragraphs"]] + [q["question"] for a in items for p in a["paragraphs"] for q in p["qas"]], src)
    common = dict(train_file=squad, dev_file=squad, epochs=1, batch_size=2, device="cpu", source=str(src), checkpoint_every=100)
    first = TrainConfig(run_dir=tmp_path / "run1", out_artifact=tmp_path / "r1.zip", seed=1, **common)
    train(first)
    # lr 0 and another seed: the weights can only come from the artifact, not from a fresh head
    second = TrainConfig(run_dir=tmp_path / "run2", out_artifact=tmp_path / "r2.zip", seed=2, lr=0.0, init_artifact=str(first.out_artifact), **common)
    train(second)
    from qa.reader_artifact import base_reader_model

    base = {k: v.detach().numpy() for k, v in base_reader_model(read_e5(src)).state_dict().items()}
    a1, _ = apply_artifact(base, first.out_artifact)
    a2, meta = apply_artifact(base, second.out_artifact)
    assert np.array_equal(a1["qa_outputs.weight"], a2["qa_outputs.weight"])
    assert np.allclose(a1["bert.encoder.layer.11.output.dense.weight"], a2["bert.encoder.layer.11.output.dense.weight"], atol=1e-3)
    assert meta["train_config"]["init_artifact"] == str(first.out_artifact)
    assert meta["continued_from"]["dev_f1"] == read_artifact_meta(first.out_artifact)["dev_f1"]
    from qa.model_card import write_model_card

    card = write_model_card(second.out_artifact).read_text()
    assert f"continued from `{first.out_artifact}`" in card and "without the answer's sentence" in card



def test_train_reader_checks_its_options_first(tmp_path):
    """Mistakes that used to surface as tracebacks minutes into a run: one line, at once."""
    from typer.testing import CliRunner

    from qa.cli import app

    empty = tmp_path / "empty.json"
    empty.write_text('{"data": []}', encoding="utf-8")
    missing = tmp_path / "none.json"
    cases = [
        (["--device", "gpu"], "error: --device must be auto, cpu or cuda, got 'gpu'"),
        (["--stride", "200", "--max-length", "128"], "error: --stride (200) must be less than half of --max-length (128)"),
        (["--train-file", str(missing)], f"error: --train-file {missing}: no such file (run from the repository root, or give the file)"),
        (["--train-file", str(empty)], f"error: --train-file: {empty}: no questions found"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(app, ["train-reader", "--run-dir", str(tmp_path / "run"), *args])
        usage = message.startswith(("error: --device", "error: --stride"))  # an option's value: exit 2, as click's own
        assert res.exit_code == (2 if usage else 1) and res.stderr.strip().startswith(message), res.stderr
    for args in (["--epochs", "0"], ["--batch-size", "0"], ["--max-steps", "-5"], ["--negative-ratio", "-1"]):
        assert CliRunner().invoke(app, ["train-reader", *args]).exit_code == 2, args
    assert not (tmp_path / "run").exists()


def test_module_entry_point_names_the_argument_to_fix():
    """`python -m qa.train_reader key=value ...` (documented for the removed-negatives run): a typo,
    a missing `=` or a wrong type is one line naming the argument, not a traceback."""
    import subprocess
    import sys

    from qa.train_reader import config_from_args

    cfg = config_from_args(["lr=3e-5", "max_length=384", "run_dir=runs/x", "init_artifact=a.zip"])
    assert (cfg.lr, cfg.max_length, str(cfg.run_dir), cfg.init_artifact) == (3e-5, 384, "runs/x", "a.zip")
    for arg, message in (
        ("epoch=3", "error: 'epoch=3': unknown key 'epoch' (did you mean 'epochs'?)"),
        ("epochs", "error: 'epochs': expected key=value"),
        ("epochs=two", "error: 'epochs=two': epochs takes int values"),
    ):
        res = subprocess.run([sys.executable, "-m", "qa.train_reader", arg], capture_output=True, text=True, timeout=120)
        assert res.returncode == 1 and res.stderr.strip() == message, res.stderr
