"""Average several fine-tuned readers ("model soup") and evaluate the average on PIAF dev.

The readers must come from the same start (same base and head initialisation, e.g. runs that differ
only by ``data_seed``). Weights are averaged tensor by tensor from their artifacts; the soup gets its
own no-answer threshold and calibration on dev and is written as an artifact like any other.

    python bench/reader_soup.py --source E5S1_FILE --out soup.zip run1/reader.zip run2/reader.zip ...

With a single artifact it re-measures that reader on dev (EM/F1, no-answer rejection) without touching it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np


def main() -> None:
    import torch

    from index.e5_convert import bert_state_dict, build_tokenizer, read_e5
    from qa.reader_artifact import apply_artifact, base_reader_model, pack_artifact, read_artifact_meta
    from qa.reader_artifact import write_checksum
    from qa.squad import load_squad
    from qa.train_reader import TrainConfig, dev_metrics

    ap = argparse.ArgumentParser()
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--source", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dev-limit", type=int, default=0, help="first N dev questions only (smoke tests)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)

    w = read_e5(args.source)
    model = base_reader_model(w)
    base = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    sds = [apply_artifact(base, a)[0] for a in args.artifacts]
    metas = [read_artifact_meta(a) for a in args.artifacts]
    soup = {k: np.mean([sd[k] for sd in sds], axis=0).astype(np.float32) for k in sds[0]}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in soup.items()})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    cfg = TrainConfig(max_length=int(metas[0]["max_length"]), stride=int(metas[0]["stride"]),
                      length_penalty=float(metas[0].get("length_penalty", 0.0)))  # the first member's decoding
    dm = dev_metrics(model, build_tokenizer(w), load_squad(cfg.dev_file)[: args.dev_limit or None], cfg)
    meta = {k: v for k, v in metas[0].items() if k != "tensors"}
    meta.update({**dm, "soup_of": [{"artifact": str(a), "dev_f1": m["dev_f1"], "step": m["step"], "train_config": m["train_config"]} for a, m in zip(args.artifacts, metas)]})
    pack_artifact(model.state_dict(), bert_state_dict(w, prefix="bert."), meta, args.out)
    write_checksum(args.out)
    print(json.dumps({"soup_dev_em": dm["dev_em"], "soup_dev_f1": dm["dev_f1"], "neg_rejected": dm["neg_rejected"],
                      "removed_rejected": dm["removed_rejected"], "members": [m["dev_f1"] for m in metas]}))


if __name__ == "__main__":
    main()
