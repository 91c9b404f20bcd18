"""The retraining Job the monitor creates in the cluster: valid, within the policies, the same
pod as the nightly CronJob's, reachable by the monitor's narrow Role; and the trigger that
creates it (one Job at a time) against a fake BatchV1Api, the one part that needs a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest

from mlops_lab.pipeline import k8s_job
from mlops_lab.pipeline.trigger import (
    RetrainAlreadyRunning,
    default_trigger,
    kubernetes_trigger,
    pipeline_trigger,
    process_trigger,
)
from mlops_lab.settings import Settings

from ..support.k8s import (
    OVERLAYS,
    FakeBatchApi,
    expected_image,
    find,
    node_version,
    overlay,
    settings_of,
    violations,
)


# ---------------------------------------------------------------- the retraining Job
@pytest.mark.parametrize("name", OVERLAYS)
def test_the_monitors_retraining_job_validates_and_meets_the_policies(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = overlay(name)
    s = settings_of(docs, monkeypatch)
    job = k8s_job.build_retrain_job(s, "drift on amount, distance_from_home_km")
    kubernetes_validate.validate(job, node_version(), strict=True)
    assert violations([job], expected_image(name)) == []
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    assert len(job["metadata"]["name"]) <= 63
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "value" not in env["MLOPS_STORE_URL"] and "value" not in env["MLOPS_ADMIN_TOKEN"]  # by reference
    assert env["MLOPS_HOME"]["value"] == k8s_job.HOME
    secret = find(docs, "Secret", k8s_job.SECRET_NAME)
    assert secret["metadata"]["name"] == k8s_job.SECRET_NAME  # no hash suffix: the Job names it
    assert set(k8s_job.SECRET_ENV.values()) <= set(secret["data"])
    # The Job runs in the monitor's namespace, under a ServiceAccount that exists and has no token...
    assert job["metadata"]["namespace"] == find(docs, "Deployment", "monitor")["metadata"]["namespace"]
    account = find(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    # ... and the monitor's ServiceAccount may create it there (and do nothing else).
    monitor_sa = find(docs, "Deployment", "monitor")["spec"]["template"]["spec"]["serviceAccountName"]
    bindings = [
        b
        for b in docs
        if b["kind"] == "RoleBinding"
        and {"kind": "ServiceAccount", "name": monitor_sa, "namespace": s.k8s_namespace} in b["subjects"]
    ]
    rules = [r for b in bindings for r in find(docs, "Role", b["roleRef"]["name"])["rules"]]
    assert rules == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]}
    ]
    assert not any(d["kind"] in ("ClusterRole", "ClusterRoleBinding") for d in docs)
    # The NetworkPolicy lets it reach Postgres.
    assert job["spec"]["template"]["metadata"]["labels"]["mlops-lab/postgres-client"] == "true"


def test_a_cuda_monitor_gives_its_jobs_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_of(overlay("gpu"), monkeypatch).model_copy(update={"model_device": "cuda"})
    job = k8s_job.build_retrain_job(s, "drift")
    kubernetes_validate.validate(job, node_version(), strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {k8s_job.GPU_NODE_LABEL: "true"} and pod["tolerations"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_cronjob_runs_what_the_monitor_creates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = overlay(name)
    job = k8s_job.build_retrain_job(settings_of(docs, monkeypatch), "scheduled nightly retrain", name="x")
    cron = find(docs, "CronJob", "retrain-nightly")["spec"]["jobTemplate"]
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        assert cron["spec"][key] == job["spec"][key], key
    a, b = cron["spec"]["template"]["spec"], job["spec"]["template"]["spec"]
    for key in (
        "serviceAccountName",
        "automountServiceAccountToken",
        "restartPolicy",
        "securityContext",
        "volumes",
    ):
        assert a[key] == b[key], key
    for ca, cb in zip(
        a["initContainers"] + a["containers"], b["initContainers"] + b["containers"], strict=True
    ):
        for key in ("name", "image", "resources", "securityContext", "volumeMounts"):
            assert ca[key] == cb[key], (ca["name"], key)
        argv_a, argv_b = ca["command"] + ca["args"], cb["command"] + cb["args"]
        assert [x for x in argv_a if x != "$(JOB_NAME)"] == [x for x in argv_b if x != "x"]


def test_kubernetes_trigger_creates_waits_and_skips(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, retrain_backend="kubernetes", k8s_image="mlops-lab:test")
    assert default_trigger(s) is kubernetes_trigger
    assert default_trigger(Settings(home=tmp_path)) is pipeline_trigger
    assert default_trigger(Settings(home=tmp_path, retrain_backend="process")) is process_trigger
    api = FakeBatchApi()
    outcome = kubernetes_trigger(s, "drift", api=api, poll_s=0)
    assert len(api.created) == 1 and outcome.name == api.created[0]["metadata"]["name"]
    with pytest.raises(RuntimeError, match="failed"):
        kubernetes_trigger(s, "drift", api=FakeBatchApi(outcome="Failed"), poll_s=0)
    busy = FakeBatchApi(running=True)
    with pytest.raises(RetrainAlreadyRunning, match="retrain-now"):
        kubernetes_trigger(s, "drift", api=busy, poll_s=0)
    assert busy.created == []
