"""The torch model flavour (the optional `gpu` extra), on the CPU.

Needs torch (`make setup-gpu`). Without it the torch tests skip, except under CI, which installs
it and must not skip them. What runs without torch: the package imports, and asking for the torch
flavour says how to install it. CUDA itself is not tested here (these machines have no GPU);
`python -m mlops_lab.bench.torch_device` measures it where there is one (docs/gpu.md).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.model_selection import train_test_split

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle import torch_model
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.serving.app import create_app
from mlops_lab.serving.holder import LoadError, ModelHolder, load_version
from mlops_lab.serving.schemas import EXAMPLE_REQUEST
from mlops_lab.settings import Settings

from ..conftest import make_settings
from .test_cli import assert_one_line_error

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(
    not HAS_TORCH and not os.environ.get("CI"), reason="torch not installed (make setup-gpu)"
)
GOOD: dict[str, Any] = {k: v for k, v in EXAMPLE_REQUEST.items() if k != "card_id"}


@pytest.fixture(scope="module")
def torch_mod() -> Any:
    assert HAS_TORCH, "torch is required in CI: run make setup-gpu"
    import torch

    return torch


@pytest.fixture(scope="module")
def split() -> tuple[Any, Any, Any, Any]:
    df = generate("baseline", 12_000, seed=11)
    return train_test_split(  # type: ignore[no-any-return]
        df[SCHEMA.names], df[SCHEMA.label], test_size=0.3, random_state=0, stratify=df[SCHEMA.label]
    )


@pytest.fixture(scope="module")
def torch_registry(torch_mod: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A serverless registry with one torch version trained on the CPU and promoted to @champion."""
    home = tmp_path_factory.mktemp("torch-registry")
    s = make_settings(home, model_flavour="torch", model_device="cpu")
    s = s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri})
    rel = train_and_release(s, generate("baseline", 6_000, seed=3), promote=True, actor="tests", reason="t")
    assert rel.promoted, rel.verdict.summary()
    return s


@needs_torch
def test_cpu_training_reaches_the_sklearn_models_pr_auc(torch_mod: Any, split: Any) -> None:
    x_fit, x_hold, y_fit, y_hold = split
    sk = fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(x_fit, y_fit)
    mlp = torch_model.build_pipeline(torch_model.TorchHyperparams(), device="cpu").fit(x_fit, y_fit)
    sk_pr = fraud_model.metrics(y_hold.to_numpy(), fraud_model.scores(sk, x_hold), 0.5)["pr_auc"]
    mlp_scores = fraud_model.scores(mlp, x_hold)
    mlp_pr = fraud_model.metrics(y_hold.to_numpy(), mlp_scores, 0.5)["pr_auc"]
    # The linear model is near the Bayes optimum on this data; the MLP lands within ~10% of it.
    assert mlp_pr >= 0.8 * sk_pr, (mlp_pr, sk_pr)
    assert mlp.named_steps["clf"].fit_device_ == "cpu"
    again = torch_model.build_pipeline(torch_model.TorchHyperparams(), device="cpu").fit(x_fit, y_fit)
    np.testing.assert_allclose(fraud_model.scores(again, x_hold), mlp_scores, atol=1e-6)  # seeded


@needs_torch
def test_the_compiled_single_row_scorer_matches_the_pipeline(torch_mod: Any, split: Any) -> None:
    x_fit, x_hold, y_fit, _ = split
    mlp = torch_model.build_pipeline(torch_model.TorchHyperparams(epochs=1), device="cpu").fit(x_fit, y_fit)
    compiled = fraud_model.compile_scorer(mlp)
    assert compiled is not None
    rows = x_hold.head(50).to_dict("records")
    rows += [
        {**rows[0], "country": "ZZ"},  # unseen category
        {**rows[1], "distance_from_home_km": None},  # imputed
        {**rows[2], "hour": float(rows[2]["hour"])},  # 3.0 for 3
    ]
    frame = pd.DataFrame(rows, columns=SCHEMA.names)
    np.testing.assert_allclose([compiled(r) for r in rows], fraud_model.scores(mlp, frame), atol=1e-9)


@needs_torch
def test_registry_round_trip_and_serving_report_torch_on_cpu(
    torch_registry: Settings, tmp_path: Path
) -> None:
    s = torch_registry.model_copy(update={"store_url": f"sqlite:///{tmp_path / 'store.db'}"})
    mv = client_for(s).get_model_version(s.model_name, "1")
    assert mv.tags["model_flavour"] == "torch"
    loaded = load_version(s, "champion")
    assert (loaded.flavour, loaded.device, loaded.scorer_kind) == ("torch", "cpu", "compiled")
    app = create_app(s)
    with TestClient(app) as client:
        assert app.state.holder.wait_ready(30), app.state.holder.not_ready_reason
        info = client.get("/v1/model").json()
        assert (info["flavour"], info["device"], info["version"]) == ("torch", "cpu", "1")
        one = client.post("/v1/predict", json=GOOD)
        assert one.status_code == 200, one.text
        rows = features_only(generate("baseline", 20, seed=8)).to_dict("records")
        batch = client.post("/v1/predict/batch", json={"rows": rows})
        assert batch.status_code == 200, batch.text
    direct = fraud_model.scores(loaded.pipeline, features_only(generate("baseline", 20, seed=8)))
    served = [p["score"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(served, direct, atol=1e-9)


@needs_torch
def test_cuda_without_a_gpu_is_a_clear_error(
    torch_mod: Any, torch_registry: Settings, tmp_path: Path
) -> None:
    """Our choice: device=cuda with no GPU fails (one line), never falls back to the CPU silently."""
    if torch_mod.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert torch_model.resolve_device("auto") == "cpu"
    with pytest.raises(torch_model.TorchUnavailable, match="sees no CUDA device"):
        torch_model.resolve_device("cuda")
    # The server: a failed load, counted, with the reason for /readyz and /v1/model.
    s = torch_registry.model_copy(
        update={"model_device": "cuda", "store_url": f"sqlite:///{tmp_path / 'store.db'}"}
    )
    with pytest.raises(LoadError, match="no CUDA device"):
        load_version(s, "champion")
    holder = ModelHolder(s, "champion")
    assert not holder.refresh() and holder.current is None and holder.load_failures == 1
    assert "device=cuda requested" in str(holder.not_ready_reason)
    # Training: before anything is logged to MLflow (the CLI prints it as one line: a ValueError).
    with pytest.raises(torch_model.TorchUnavailable, match="no CUDA device"):
        train_and_release(s, generate("baseline", 500, seed=1), promote=False, actor="t", reason="t")


# Makes `import torch` fail in a child process, as on a machine without the gpu extra. (Setting
# sys.modules["torch"] = None instead would break scipy, which looks torch up there.)
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
sys.meta_path.insert(0, NoTorch())
"""


def test_without_torch_the_package_imports_and_the_cli_says_how_to_install_it(tmp_path: Path) -> None:
    """Runs with or without torch installed."""
    data = tmp_path / "train.parquet"
    generate("baseline", 500, seed=1).to_parquet(data)
    code = NO_TORCH + (
        "import mlops_lab.serving.app, mlops_lab.lifecycle.train, mlops_lab.lifecycle.torch_model\n"
        "from mlops_lab import cli\n"
        f"sys.argv = ['mlops-lab', 'train', '--data', {str(data)!r}, '--flavour', 'torch']\n"
        "cli.main()\n"
    )
    env = {**os.environ, "MLOPS_HOME": str(tmp_path), "MLOPS_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert_one_line_error(result, 1, "make setup-gpu")
