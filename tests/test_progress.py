"""Progress lines of long jobs (modelcollapse.progress): what they say, how often."""

from __future__ import annotations

import logging

import pytest

from modelcollapse.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (42.4, "42s"), (95, "1m35s"), (3700, "1h01m")]
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_a_line_at_most_every_interval_then_a_final_line(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="modelcollapse")
    with Progress("lm train", 100, "step", items_unit="tokens", interval=10, clock=clock) as p:
        for step in range(100):
            clock.now += 1.0  # one step per second
            p.update(items=512, loss=3.0 - step / 100)
    lines = [r.getMessage() for r in caplog.records]
    # 100 s of work, a line every 10 s (none at step 100: the final line says it)
    assert len(lines) == 10
    assert lines[0] == (
        "lm train: step 10/100 (10%), 1 step/s, 512 tokens/s, loss 2.91, 1m30s left"
    )
    assert lines[-1] == (
        "lm train: step 100/100 (100%), 1 step/s, 512 tokens/s, loss 2.01, done in 1m40s"
    )


def test_disabled_progress_logs_nothing(caplog):
    caplog.set_level(logging.INFO, logger="modelcollapse")
    clock = Clock()
    with Progress("vae", 5, enabled=False, interval=0, clock=clock) as p:
        for _ in range(5):
            clock.now += 100
            p.update()
    assert caplog.records == []


def test_the_vae_training_loop_reports_batches_images_and_loss(caplog):
    """A real (tiny) VAE fit logs its progress through the job's logger."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from modelcollapse.neural.vae_model import ConvVAE, train_loop

    caplog.set_level(logging.INFO, logger="modelcollapse")
    net = ConvVAE(image_shape=[1, 28, 28], latent_dim=2, channels=[4, 8], hidden=16)
    x = (torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    history = train_loop(
        net, x, epochs=2, batch_size=16, lr=1e-3,
        rng=np.random.default_rng(0), noise=torch.Generator().manual_seed(1), desc="vae fit",
    )  # fmt: skip
    final = [r.getMessage() for r in caplog.records if "done in" in r.getMessage()]
    assert len(final) == 1
    assert final[0].startswith("vae fit: batch 6/6 (100%), ")  # 2 epochs of 3 batches
    assert "images/s" in final[0]
    assert f"loss {history[-1]:.4g}" in final[0] and "epoch 2" in final[0]
