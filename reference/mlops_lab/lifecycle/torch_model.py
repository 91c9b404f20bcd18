"""The torch flavour of the fraud model: the same features, an MLP, on CUDA when there is one.

    make setup-gpu                                   # the optional `gpu` extra (torch)
    python -m mlops_lab.lifecycle.torch_model        # fits on 20k baseline rows, prints metrics vs sklearn
    MLOPS_MODEL_FLAVOUR=torch mlops-lab train --data var/data/train.parquet --promote

The pipeline is the sklearn model's own `ColumnTransformer` (`model.build_preprocessor`) and a
`TorchMLPClassifier` step, so training, the gate, the registry and serving all see an sklearn
`Pipeline` with `predict_proba`: MLflow logs it with the sklearn flavour (skops), and the holder
loads it like any other version. Train and serve transform features identically by construction.

Devices (`model_device`, `MLOPS_MODEL_DEVICE`): `auto` is CUDA when torch sees a GPU, else the
CPU; `cpu` always works; `cuda` without a GPU is an error (`TorchUnavailable`, a ValueError: one
line from the CLI, a failed load in the server), never a silent fallback: asking for a GPU and
quietly getting a CPU hides a broken node. Weights are stored as numpy arrays, so a version
trained on a GPU loads on a CPU-only machine; the server moves it to its own `model_device`.

Torch is imported lazily: without it this module still imports (and a logged torch model
unpickles); only fitting or scoring needs it. Inference runs in float64 so that the compiled
single-row path and the batch path agree to 1e-9 (the holder's parity check).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from mlops_lab.data.schema import SCHEMA, Schema
from mlops_lab.errors import UserError
from mlops_lab.lifecycle.model import build_preprocessor
from mlops_lab.lifecycle.scorer import _key

FLAVOUR = "torch"
# The type skops must trust to load this estimator back from the registry.
SKOPS_TRUSTED = ["mlops_lab.lifecycle.torch_model.TorchMLPClassifier"]


@dataclass(frozen=True)
class TorchHyperparams:
    # Two small hidden layers: the data has ~60 one-hot/standardised inputs and a noisy label,
    # so capacity beyond this only overfits (the linear model is already near the Bayes optimum).
    hidden: tuple[int, ...] = (64, 32)
    epochs: int = 8
    batch_size: int = 512
    lr: float = 2e-3
    # L2 on the weights (AdamW): the regulariser that keeps the MLP's PR-AUC at the linear model's.
    weight_decay: float = 1e-3
    seed: int = 42


class TorchUnavailable(UserError, ValueError):
    """torch is not installed, or the requested device is not there."""


def require_torch() -> Any:
    """The torch module, or TorchUnavailable saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise TorchUnavailable(
            "the torch model flavour needs torch: run `make setup-gpu` (pip install -r requirements/gpu.txt)"
        ) from exc
    return torch


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'. 'cuda' without one raises TorchUnavailable."""
    torch = require_torch()
    if requested not in ("auto", "cpu", "cuda"):
        raise TorchUnavailable(f"unknown device {requested!r}: use auto, cpu or cuda")
    has_cuda = bool(torch.cuda.is_available())
    if requested == "cuda" and not has_cuda:
        raise TorchUnavailable(
            f"device=cuda requested but torch {torch.__version__} sees no CUDA device; "
            "use device=auto (MLOPS_MODEL_DEVICE=auto) to run on the CPU"
        )
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A binary MLP with the sklearn estimator interface (fit / predict_proba / classes_)."""

    flavour = FLAVOUR

    def __init__(
        self,
        hidden: tuple[int, ...] = (64, 32),
        epochs: int = 8,
        batch_size: int = 512,
        lr: float = 2e-3,
        weight_decay: float = 1e-3,
        seed: int = 42,
        device: str = "auto",
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device  # where fit() trains; serving picks its own with to_device()

    def _module(self, torch: Any, widths: list[int]) -> Any:
        *hidden, last = itertools.pairwise(widths)
        layers: list[Any] = []
        for a, b in hidden:
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(*last))
        return torch.nn.Sequential(*layers)

    def fit(self, x: Any, y: Any) -> TorchMLPClassifier:
        torch = require_torch()
        device = resolve_device(self.device)
        xs = torch.from_numpy(_dense(x).astype(np.float32)).to(device)
        ys = torch.from_numpy(np.asarray(y, dtype=np.float32).reshape(-1, 1)).to(device)
        widths = [xs.shape[1], *self.hidden, 1]
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(self.seed)
            net = self._module(torch, widths)
        net = net.to(device).train()
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        gen = torch.Generator().manual_seed(self.seed)  # shuffling on the CPU: same order on any device
        for _ in range(self.epochs):
            order = torch.randperm(len(xs), generator=gen).to(device)
            for start in range(0, len(xs), self.batch_size):
                idx = order[start : start + self.batch_size]
                opt.zero_grad(set_to_none=True)
                loss_fn(net(xs[idx]), ys[idx]).backward()
                opt.step()
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        self.coefs_ = [m.weight.detach().cpu().numpy().copy() for m in linears]
        self.intercepts_ = [m.bias.detach().cpu().numpy().copy() for m in linears]
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = int(xs.shape[1])
        self.fit_device_ = device
        self.to_device(device)  # scores where it trained, until loaded elsewhere (then: to_device)
        return self

    # ------------------------------------------------------------ inference
    def to_device(self, requested: str = "auto") -> str:
        """Build the float64 inference network on `requested` (auto/cpu/cuda); returns the device used."""
        torch = require_torch()
        device = resolve_device(requested)
        net = self._module(torch, [self.n_features_in_, *[len(b) for b in self.intercepts_]])
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for m, w, b in zip(linears, self.coefs_, self.intercepts_, strict=True):
                m.weight.copy_(torch.from_numpy(np.asarray(w, dtype=np.float64)))
                m.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float64)))
        self._infer = (device, net.double().to(device).eval())
        return device

    @property
    def inference_device(self) -> str:
        """Where predict_proba runs (builds the network on 'auto' on first use)."""
        return self._network()[0]

    def _network(self) -> tuple[str, Any]:
        infer: tuple[str, Any] | None = getattr(self, "_infer", None)
        if infer is None:  # just loaded (unpickled): auto, unless the loader called to_device
            self.to_device("auto")
            infer = self._infer
        assert infer is not None
        return infer

    def predict_proba(self, x: Any) -> np.ndarray:
        torch = require_torch()
        device, net = self._network()
        xs = _dense(x)
        out = np.empty(len(xs), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(xs), 65_536):  # bounded device memory for big batch files
                chunk = torch.from_numpy(xs[start : start + 65_536]).to(device)
                out[start : start + len(chunk)] = torch.sigmoid(net(chunk)).squeeze(1).cpu().numpy()
        return np.column_stack([1.0 - out, out])

    def predict(self, x: Any) -> np.ndarray:
        return (self.predict_proba(x)[:, 1] >= 0.5).astype(int)

    def compile_scorer(self, prep: Any) -> Callable[[Mapping[str, Any]], float] | None:
        """Single-row scorer: the fitted transform in plain Python, then one forward pass.

        Skips the ~5 ms a ColumnTransformer costs on a one-row DataFrame (see model.py).
        """
        vector = row_vectorizer(prep)
        if vector is None:
            return None
        torch = require_torch()
        device, net = self._network()

        def score(record: Mapping[str, Any]) -> float:
            with torch.inference_mode():
                t = torch.from_numpy(vector(record)).to(device).unsqueeze(0)
                return float(torch.sigmoid(net(t))[0, 0])

        return score

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_infer", None)  # a live torch module on some device: rebuilt where it is loaded
        return state


def row_vectorizer(prep: Any) -> Callable[[Mapping[str, Any]], np.ndarray] | None:
    """One record -> the row `prep.transform` would produce (one-hot block, then scaled numerics)."""
    try:
        onehot = prep.named_transformers_["onehot"]
        numeric = prep.named_transformers_["numeric"]
        (_, _, one_hot_cols), (_, _, numeric_cols) = prep.transformers_[0], prep.transformers_[1]
        impute, scale = numeric.named_steps["impute"], numeric.named_steps["scale"]
        if numeric.named_steps["log1p"].func is not np.log1p:
            return None
    except (AttributeError, KeyError, IndexError, ValueError, TypeError):
        return None
    tables: list[tuple[str, dict[Any, int]]] = []
    pos = 0
    for col, cats in zip(one_hot_cols, onehot.categories_, strict=True):
        tables.append((col, {_key(c): pos + i for i, c in enumerate(cats)}))
        pos += len(cats)
    numerics = [
        (col, pos + i, float(med), float(mu), float(sd))
        for i, (col, med, mu, sd) in enumerate(
            zip(numeric_cols, impute.statistics_, scale.mean_, scale.scale_, strict=True)
        )
    ]
    width = pos + len(numerics)

    def vector(record: Mapping[str, Any]) -> np.ndarray:
        v = np.zeros(width, dtype=np.float64)
        for col, table in tables:
            i = table.get(_key(record.get(col)))
            if i is not None:  # unseen category: all zeros, like handle_unknown="ignore"
                v[i] = 1.0
        for col, i, median, mean, sd in numerics:
            x = record.get(col)
            if x is None or x != x:  # None or NaN: imputed like training
                x = median
            v[i] = (math.log1p(x) - mean) / sd
        return v

    return vector


def build_pipeline(params: TorchHyperparams, device: str = "auto", schema: Schema = SCHEMA) -> Pipeline:
    clf = TorchMLPClassifier(
        hidden=params.hidden,
        epochs=params.epochs,
        batch_size=params.batch_size,
        lr=params.lr,
        weight_decay=params.weight_decay,
        seed=params.seed,
        device=device,
    )
    return Pipeline([("prep", build_preprocessor(schema)), ("clf", clf)])


def flavour_of(pipeline: Any) -> str:
    """'torch' or 'sklearn', from the fitted pipeline itself (no registry tag needed)."""
    steps = getattr(pipeline, "named_steps", {})
    return str(getattr(steps.get("clf"), "flavour", "sklearn"))


if __name__ == "__main__":
    import time

    from sklearn.model_selection import train_test_split

    from mlops_lab.data.generator import generate
    from mlops_lab.lifecycle import model as fraud_model

    df = generate("baseline", 20_000)
    tr, te = train_test_split(df, test_size=0.3, random_state=0, stratify=df[SCHEMA.label])
    for name, pipe in (
        ("sklearn", fraud_model.build_pipeline(fraud_model.Hyperparams())),
        ("torch", build_pipeline(TorchHyperparams())),
    ):
        t0 = time.perf_counter()
        pipe.fit(tr[SCHEMA.names], tr[SCHEMA.label])
        fit_s = time.perf_counter() - t0
        s = fraud_model.scores(pipe, te[SCHEMA.names])
        t = fraud_model.budget_threshold(fraud_model.scores(pipe, tr[SCHEMA.names]), 0.05)
        print(name, f"fit {fit_s:.2f} s", fraud_model.metrics(te[SCHEMA.label].to_numpy(), s, t))
