"""The four training loops (KD finetune, SNL, base training, the 2D toy) give bit-identical numbers to the
hand-rolled loops they replaced: sha256 digests of the trained models' logits, of their histories and of their
progress reports, recorded on the old code (torch 2.14.1, x86-64 CPU, one thread; another torch build or CPU
may change the last bits of a convolution: re-record there on the old code); and the loop's own contract
(cancel before every batch, the mean loss per row, stopping early)."""

import copy
import hashlib

import pandas as pd
import pytest
import torch

from fairlin_core.checkpoints import load_dataset_for
from fairlin_core.epoch_loop import run_epochs
from fairlin_core.finetune import FinetuneConfig, finetune
from fairlin_core.linearizers import LinearizeOptions, SNLConfig, prepare_students
from fairlin_core.linearizers.snl import snl_trajectory
from fairlin_core.metrics import predict_logits
from fairlin_core.models import build_model
from fairlin_core.runtime import Cancelled
from fairlin_core.toy import ToyConfig, linearization_masks, load_toy, train_toy_model
from fairlin_core.train import train_base

CPU = torch.device("cpu")
DIGESTS = {  # recorded on the hand-rolled loops (before fairlin_core.epoch_loop)
    "finetune": "a106300f920d384ae8f9fcad5017271f1720464cf5a3622d42ab672f6d506737",
    "snl": "b73b3f8f07f08ada74bb0839580e884a0a9351f24b5da522d1b555ef61f00da8",
    "train_digits": "17c16b58c8212be14fe17629713bd1895be172569d8867a9d8f7ad3760a1ff62",
    "train_toy": "02accb259c279b2ad837f7d974ef4daf3f14a11b0b9980c4cb228af5e8b76204",
    "toy": "9ac2a243c2059343d219fda13ed594917ad185855318272a19df44803190e2ea",
}


@pytest.fixture(autouse=True)
def one_thread():
    """Pinned bits need one intra-op thread (a parallel reduction may sum in another order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(digits_checkpoint):
    return digits_checkpoint, load_dataset_for(digits_checkpoint.sidecar)


class Reports(list):
    """A progress callback keeping (fraction, stage, message, numeric metrics) of every report."""

    def __call__(self, update):
        numbers = {k: v for k, v in sorted(update.metrics.items()) if isinstance(v, (int, float))}
        self.append((update.fraction, update.stage, update.message, numbers))


def digest(logits: torch.Tensor, history: pd.DataFrame, reports: Reports) -> str:
    """sha256 of the logits' bytes, the history (every float to 17 digits: exact) and the progress reports."""
    hasher = hashlib.sha256(logits.contiguous().numpy().tobytes())
    hasher.update(history.to_csv(index=False, float_format="%.17g").encode())
    exact = [(f"{f:.17g}", stage, message, {k: f"{v:.17g}" for k, v in numbers.items()})
             for f, stage, message, numbers in reports]
    hasher.update(repr(exact).encode())
    return hasher.hexdigest()


def test_plain_kd_finetune_is_bit_identical(digits):
    checkpoint, bundle = digits
    config = FinetuneConfig(epochs=2)
    student = prepare_students(checkpoint.model, checkpoint.spec, bundle, "random", [0.1],
                               options=LinearizeOptions(finetune=config), seed=0, device=CPU).students[0]
    reports = Reports()
    result = finetune(student.model, checkpoint.model, bundle, config, seed=0, device=CPU, progress=reports)
    logits = predict_logits(result.model, bundle.splits["test"].x, device=CPU)
    assert result.best_epoch in (0, 1, 2) and len(reports) == 2
    assert digest(logits, result.history, reports) == DIGESTS["finetune"]


@pytest.mark.parametrize("read_every", [1, 5])  # per-batch host reads and the device-side snapshots agree
def test_snl_is_bit_identical(digits, read_every):
    checkpoint, bundle = digits
    config = SNLConfig(epochs=4, mask_lr=0.1, lam=0.05, lam_patience_epochs=1)
    reports = Reports()
    snapshots, history = snl_trajectory(checkpoint.model, bundle, [5000, 100], config, seed=0, device=CPU,
                                        progress=reports, read_every=read_every)
    assert [(s.budget, s.epoch, s.relu_count, s.reached) for s in snapshots] == [(5000, 1, 1156, True),
                                                                               (100, 2, 97, True)]
    logits = []
    for snapshot in snapshots:
        student = copy.deepcopy(checkpoint.model)
        student.load_state_dict(snapshot.state)
        logits.append(predict_logits(student, bundle.splits["test"].x, device=CPU))
    assert digest(torch.cat(logits), history, reports) == DIGESTS["snl"]


@pytest.mark.parametrize("case", ["digits", "toy"])
def test_base_training_is_bit_identical(digits, case):
    if case == "digits":  # SGD, batches of 64, random shifts
        bundle, model, options, epochs = digits[1], "resnet18", {"width": 4}, 2
    else:  # Adam, full batch
        bundle, model, options, epochs = load_toy(ToyConfig(n=400), seed=0), "mlp", {}, 30
    reports = Reports()
    trained, _, _, history = train_base(bundle, model, model_options=options, epochs=epochs, seed=0, device=CPU,
                                        progress=reports)
    logits = predict_logits(trained, bundle.splits["test"].x, device=CPU)
    assert len(reports) == epochs
    assert digest(logits, history, reports) == DIGESTS[f"train_{case}"]


def test_toy_training_is_bit_identical():
    config = ToyConfig(n=400)
    bundle, spec = load_toy(config, seed=0), config.model_spec()
    masks = linearization_masks(build_model(spec), 0.5, "random")
    reports = Reports()
    model, history = train_toy_model(bundle, spec, masks=masks, steps=60, seed=0, device=CPU, progress=reports,
                                     report_every=20, preview_every=30, preview_resolution=8)
    logits = predict_logits(model, bundle.splits["test"].x, device=CPU)
    assert len(reports) == 3 and list(history["step"]) == list(range(1, 61))
    assert digest(logits, history, reports) == DIGESTS["toy"]


class CountingFlag:
    """A cancel flag that is set from its ``after``-th+1 check on and counts its checks."""

    def __init__(self, after: int) -> None:
        self.after, self.checks = after, 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > self.after


def test_run_epochs_checks_cancel_before_every_batch_reports_the_mean_loss_per_row_and_stops_early():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sizes, epochs_seen = [], []

    def forward(index):
        sizes.append(len(index))
        return model(torch.ones(len(index), 2)).pow(2).mean(), torch.tensor(3.0 * len(index))

    def end_epoch(epoch, loss):
        epochs_seen.append((epoch, loss))
        return epoch == 2
    flag = CountingFlag(after=100)
    run_epochs(model, optimizer, forward, epochs=5, rows=9, batch_size=4, end_epoch=end_epoch,
               generator=torch.Generator().manual_seed(0), device=CPU, cancel=flag)
    assert sizes == [4, 5] * 2  # the trailing batch of one joins the previous one; stopped after epoch 2
    assert epochs_seen == [(1, 3.0), (2, 3.0)] and flag.checks == 4
    flag, sizes[:] = CountingFlag(after=3), []
    with pytest.raises(Cancelled):
        run_epochs(model, optimizer, forward, epochs=5, rows=9, batch_size=4, end_epoch=end_epoch, device=CPU,
                   cancel=flag)
    assert len(sizes) == 3  # cancelled before the fourth batch
