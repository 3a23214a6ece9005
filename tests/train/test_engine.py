"""Training loop behaviour on the stand-in model: logging, checkpoints, trainable-only optimiser, exact resumption
after SIGKILL, non-finite-loss stop, multi-process DDP/FSDP2 agreeing with a single process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import standin_config, write_yaml

from sama.errors import ConfigError
from sama.train.config import config_from_dict, load_config
from sama.train.engine import NonFiniteLossError, Trainer, train
from sama.train.tracking import read_log

REPO = Path(__file__).resolve().parents[2]


def _train_losses(log: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_log(log) if r["split"] == "train"]


def test_run_writes_log_plot_and_trainable_only_checkpoint(tmp_path: Path) -> None:
    data = standin_config(tmp_path, plot=True)
    data["data"]["val"] = [{"kind": "random", "options": {"num_samples": 4, "seed": 5}}]
    trainer = Trainer(config_from_dict(data))
    result = trainer.fit()
    assert result.steps == 8
    records = read_log(result.log_path)
    train_records = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train_records] == list(range(1, 9))
    assert {"loss", "loss_reg", "loss_cls", "lr", "grad_norm", "time"} <= set(train_records[0])
    assert train_records[0]["lr"] == pytest.approx(1e-2 * 1e-5)  # warm-up starts at start_factor · lr
    assert any(r["split"] == "val" and r["loss"] > 0 for r in records)
    assert result.plot_path is not None and result.plot_path.stat().st_size > 1000
    # checkpoints every 3 steps + the final one, keep_last=2
    names = sorted(p.name for p in (result.output_dir / "checkpoints").glob("step-*"))
    assert names == ["step-0000006", "step-0000008"]
    saved = load_file(str(result.output_dir / "checkpoints" / "step-0000008" / "model.safetensors"))
    assert saved and all(name.startswith("head.") for name in saved)  # the frozen encoder is not saved
    optim_state = torch.load(result.output_dir / "checkpoints/step-0000008/optimizer.pt", weights_only=True)
    assert set(optim_state["state"]) == set(saved)  # only trainable parameters were optimised
    state = json.loads((result.output_dir / "checkpoints/step-0000008/trainer_state.json").read_text())
    assert state["step"] == 8 and state["position"]["index"] > 0 and state["model_name"] == "train-standin"


def test_loss_decreases_on_repeated_data(tmp_path: Path) -> None:
    data = standin_config(tmp_path, max_steps=30, save_every=0)
    data["data"]["train"][0]["options"] = {"num_samples": 4}
    data["optim"]["warmup_ratio"] = 0.0
    result = train(config_from_dict(data))
    losses = [loss for _, loss in _train_losses(result.log_path)]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_resume_after_sigkill_reproduces_the_loss_curve(tmp_path: Path) -> None:
    base = standin_config(tmp_path)
    base["model"]["overrides"] = {"sleep_per_forward": 0.05, "dropout": 0.3}
    reference = train(config_from_dict({**base, "output_dir": str(tmp_path / "ref")}))
    killed_dir = tmp_path / "killed"
    config = write_yaml(tmp_path / "killed.yaml", {**base, "output_dir": str(killed_dir)})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sama.cli", "train", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    latest = killed_dir / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert latest.read_text().strip() == "step-0000003"
    assert len(_train_losses(killed_dir / "train_log.jsonl")) < 8
    resumed = train(load_config(config), resume=True)
    assert resumed.steps == 8
    got, want = _train_losses(resumed.log_path), _train_losses(reference.log_path)
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(1, 9))
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want], rel=1e-6, abs=1e-7)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    data = standin_config(tmp_path)
    data["model"]["overrides"] = {"nan_on_forward": 9}  # forward 9 = first micro-batch of step 5
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at optimiser step 5 .*step-0000003"):
        train(config_from_dict(data))
    checkpoints = tmp_path / "out" / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step-0000003"
    assert [r["step"] for r in read_log(tmp_path / "out" / "train_log.jsonl")] == [1, 2, 3, 4]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_process_run_matches_single_process(tmp_path: Path, strategy: str) -> None:
    """2 ranks x batch 1 see the same samples per step as 1 rank x batch 2 (no dropout), so the curves agree."""
    base = standin_config(tmp_path, max_steps=4, save_every=2)
    base["model"]["overrides"] = {"dropout": 0.0}
    base["data"]["grad_accum"] = 1
    single = train(config_from_dict({**base, "output_dir": str(tmp_path / "single")}))
    multi = {**base, "output_dir": str(tmp_path / strategy), "strategy": strategy}
    multi["data"] = {**base["data"], "batch_size": 1}
    config = write_yaml(tmp_path / "multi.yaml", multi)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "sama.cli",
        "train",
        str(config),
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    got, want = _train_losses(tmp_path / strategy / "train_log.jsonl"), _train_losses(single.log_path)
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want], rel=1e-5)
    weights = load_file(str(tmp_path / strategy / "checkpoints/step-0000004/model.safetensors"))
    reference = load_file(str(tmp_path / "single/checkpoints/step-0000004/model.safetensors"))
    assert weights.keys() == reference.keys()
    for name in weights:
        torch.testing.assert_close(
            weights[name], reference[name], rtol=1e-3, atol=1e-4
        )  # Adam amplifies reduction-order noise; one step is ~1e-2


class _RecordingEvaluator:
    """A validation hook like the evaluation suite will provide."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_evaluate(self, trainer: Trainer, step: int) -> dict[str, float]:
        self.steps.append(step)
        return {"fake_miou": 0.25 * step}


def test_evaluation_callback_runs_every_n_steps(tmp_path: Path) -> None:
    evaluator = _RecordingEvaluator()
    data = standin_config(tmp_path, eval_every=3, save_every=0)
    Trainer(config_from_dict(data), callbacks=[evaluator]).fit()
    assert evaluator.steps == [3, 6, 8]
    val = [r for r in read_log(tmp_path / "out" / "train_log.jsonl") if r["split"] == "val"]
    assert [(r["step"], r["fake_miou"]) for r in val] == [(3, 0.75), (6, 1.5), (8, 2.0)]


def test_bf16_autocast_runs_on_cpu(tmp_path: Path) -> None:
    result = train(config_from_dict(standin_config(tmp_path, precision="bf16", max_steps=2, save_every=0)))
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)


def test_lr_multipliers_scale_matching_parameters(tmp_path: Path) -> None:
    data = standin_config(tmp_path)
    data["optim"]["lr_multipliers"] = {"head.3.": 3.0}
    trainer = Trainer(config_from_dict(data))
    trainer._setup()
    base = data["optim"]["lr"]
    ids = {id(p): n for n, p in trainer.raw_model.named_parameters()}
    seen = {ids[id(p)]: group["initial_lr"] for group in trainer.optimizer.param_groups for p in group["params"]}
    assert seen == {"head.0.weight": base, "head.0.bias": base, "head.3.weight": 3 * base, "head.3.bias": 3 * base}
    data["optim"]["lr_multipliers"] = {"head.3.": 3.0, "head.": 0.5}  # the first matching prefix wins (sama-smol)
    trainer = Trainer(config_from_dict(data))
    trainer._setup()
    ids = {id(p): n for n, p in trainer.raw_model.named_parameters()}
    seen = {ids[id(p)]: group["initial_lr"] for group in trainer.optimizer.param_groups for p in group["params"]}
    assert seen == {"head.0.weight": base / 2, "head.0.bias": base / 2, "head.3.weight": 3 * base,
                    "head.3.bias": 3 * base}
    data["optim"]["lr_multipliers"] = {"encoder.": 2.0}  # frozen: matches no trainable parameter
    with pytest.raises(ConfigError, match=r"prefix 'encoder\.' matches no trainable parameter"):
        Trainer(config_from_dict(data))._setup()
