"""Bad command lines, as a hostile user types them: every one a one-line error with exit code 2 that
names the option or file, no traceback, and nothing created or changed on disk."""

import json

import pytest
import torch
from typer.testing import CliRunner

from nisqdiff.cli import app


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint, data_dir):
    """Bad and good inputs on disk: {name: path}."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "text.txt").write_text("not a tensor")
    (d / "empty.json").write_text("")
    (d / "nokeys.json").write_text(json.dumps({"name": "x"}))
    torch.save(torch.zeros(3, 1, 28, 28), d / "bare.pt")
    torch.save({"images": torch.zeros(3, 1, 8, 8)}, d / "shape.pt")
    torch.save({"images": torch.full((3, 1, 28, 28), float("nan"))}, d / "nan.pt")
    torch.save({"meta": {}}, d / "noimages.pt")
    (d / "type.toml").write_text('kind = "shots"\nshots = "many"\n')
    (d / "syntax.toml").write_text('kind = "shots\n')
    (d / "folder").mkdir()
    return {"ckpt": tiny_checkpoint("classical"), "hckpt": tiny_checkpoint("1hqconv"), "data": data_dir, **{
        p.stem if p.suffix != ".pt" else p.stem + "_pt": p for p in d.iterdir()}}  # fmt: skip


CASES = [
    # train
    ("train --arch 5hqconv", "unknown architecture '5hqconv'"),
    ("train --dataset cifar10", "unknown dataset 'cifar10'"),
    ("train --batch-size 0", "--batch-size"),
    ("train --epochs nan", "--epochs"),
    ("train --epochs inf", "--epochs"),
    ("train --epochs -1", "--epochs"),
    ("train --max-steps 0", "--max-steps"),
    ("train --max-steps -5", "--max-steps"),
    ("train --subset 0", "--subset"),
    ("train --seed -1", "--seed"),
    ("train --seed 99999999999999999999", "--seed"),
    ("train --grid-images -1", "--grid-images"),
    ("train --threads -1", "--threads"),
    ("train --threads 0", "--threads"),
    ("train --threads 1000000", "--threads"),
    ("train --resume --overwrite", "contradict"),
    ("train --freeze-classical", "--init-from"),
    ("train --init-from nowhere.pt", "--init-from nowhere.pt does not exist"),
    ("train --resume --out {folder}", "checkpoint.pt does not exist"),
    ("train --torch-device gpu7", "--torch-device"),
    ("train --torch-device cuda:7", "--torch-device cuda:7"),
    ("train --out {text}", "is not a folder"),
    ("train --arch classical --data-dir nowhere", "--data-dir nowhere does not exist"),
    ("train --arch 1fqconv --init-from {hckpt} --data-dir {data}", "expected 'classical'"),
    ("train --schedule quadratic", "unknown schedule 'quadratic'"),
    ("train --classes 12 --data-dir {data}", "--classes 12 not in mnist (its classes: 0..9)"),
    ("train --classes 3 --per-class 7000 --data-dir {data}", "--per-class 7000 exceeds the 6131 images of class 3"),
    ("train --classes three", "--classes takes comma-separated class indices"),
    ("train --dataset dermamnist", "dermamnist has colour images and 1hqconv takes one channel: use --arch qbottleneck-rgb"),
    ("train --arch qbottleneck-rgb", "mnist has grey images; --arch qbottleneck-rgb takes RGB: drop its -rgb"),
    ("train --arch qbottleneck-q12", "is written 'qbottleneck' (defaults left out)"),
    ("train --arch qbottleneck --init-from {ckpt}", "--init-from copies De Falco et al.'s classical U-Net; qbottleneck is another network"),
    ("train --per-class 0", "--per-class must be at least 1"),
    ("train --timesteps 0", "--timesteps"),
    ("train --logsnr-shift 1", "--logsnr-shift applies to --schedule shifted-cosine only"),
    ("train --schedule shifted-cosine --logsnr-shift nan", "must be finite"),
    ("train --resume --timesteps 100", "--resume keeps the run's schedule"),
    # sample
    ("sample --checkpoint {ckpt} --num 0", "--num"),
    ("sample --checkpoint {ckpt} --batch-size 0", "--batch-size"),
    ("sample --checkpoint {ckpt} --steps 0", "DDIM steps"),
    ("sample --checkpoint {ckpt} --steps 5000", "DDIM steps"),
    ("sample --checkpoint {ckpt} --eta nan", "--eta"),
    ("sample --checkpoint {ckpt} --eta -1", "--eta"),
    ("sample --checkpoint {ckpt} --eta 2", "--eta"),
    ("sample --checkpoint {ckpt} --seed -3", "--seed"),
    ("sample --checkpoint {ckpt} --sampler euler", "unknown sampler 'euler'"),
    ("sample --checkpoint {ckpt} --device nowhere", "unknown device 'nowhere'"),
    ("sample --checkpoint {ckpt} --shots 10", "--shots does not apply to device 'noiseless'"),
    ("sample --checkpoint {ckpt} --device shots --shots 1", "--shots must be at least 2"),
    ("sample --checkpoint {ckpt} --device shots --shots 100000000000", "at most 10,000,000"),
    ("sample --checkpoint {ckpt} --device shots --device-seed -1", "--device-seed"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --job-timeout -1", "--job-timeout"),
    ("sample --checkpoint {ckpt} --device emulator --noise-scale nan", "--noise-scale"),
    ("sample --checkpoint {ckpt} --device emulator --noise-scale -1", "--noise-scale"),
    ("sample --checkpoint {ckpt} --device emulator --noise-scale 1e9", "--noise-scale"),
    ("sample --checkpoint {ckpt} --device aer-noisy --noise-scale inf", "--noise-scale"),
    ("sample --checkpoint {ckpt} --device emulator --trajectories 0", "--trajectories"),
    ("sample --checkpoint {ckpt} --device emulator --shots 100 --trajectories 32", "multiple of the trajectories"),
    ("sample --checkpoint {ckpt} --device emulator --calibration nowhere", "unknown calibration 'nowhere'"),
    ("sample --checkpoint {ckpt} --device emulator --method exakt", "unknown emulator method 'exakt'; valid: exact, trajectories"),
    ("sample --checkpoint {ckpt} --device emulator-exact --trajectories 8", "--trajectories is unused by the emulator's exact"),
    ("sample --checkpoint {ckpt} --device emulator --method exact --trajectories 8", "--trajectories is unused"),
    ("sample --checkpoint {ckpt} --device emulator --zne 0.5,1,2", "noise factors must be at least 1"),
    ("sample --checkpoint {ckpt} --device emulator --zne 1,2,2", "must be distinct"),
    ("sample --checkpoint {ckpt} --device emulator --zne 1", "at least two noise factors"),
    ("sample --checkpoint {ckpt} --device emulator --zne one,two", "comma-separated noise factors"),
    ("sample --checkpoint {ckpt} --device emulator --zne 1,2 --zne-extrapolator cubic", "unknown ZNE extrapolator 'cubic'"),
    ("sample --checkpoint {ckpt} --device emulator --zne 1,2 --zne-extrapolator polynomial_degree_2", "at least 3 noise"),
    ("sample --checkpoint {ckpt} --device emulator --noise-scale 5 --zne 1,2,3", "--noise-scale"),
    ("sample --checkpoint {ckpt} --device shots --zne 1,2", "--zne does not apply"),
    ("sample --checkpoint {ckpt} --device emulator --zne-extrapolator linear", "--zne-extrapolator applies with --zne"),
    ("sample --checkpoint {ckpt} --device aer --calibration fake_torino", "--calibration does not apply"),
    ("sample --checkpoint {ckpt} --device ibm", "--backend NAME"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_nowhere", "unknown fake backend 'fake_nowhere'"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_manila", "has 5 qubits"),
    ("sample --checkpoint {ckpt} --device ibm --backend ibm_brisbane", "no IBM Quantum account"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --execution-mode dedicated", "execution mode"),
    ("sample --checkpoint {ckpt} --dry-run", "--dry-run applies to device kind ibm"),
    ("sample --checkpoint {ckpt} --budget 60", "--budget applies to device kind ibm"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --budget -5", "--budget must be a positive"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --primitive sampler --resilience-level 2",
     "resilience_level is an option of the estimator primitive, not the sampler; add --primitive estimator"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --primitive estimator --resilience-level 3",
     "resilience_level must be <=2"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --primitive counter", "unknown primitive 'counter'"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --primitive estimator --runtime-option "
     "resilience.zne.extrapolator=cubic", "Input should be 'linear'"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --primitive estimator --runtime-option zne_mitigation=true",
     "did you mean: resilience.zne_mitigation"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --runtime-option twirling", "takes KEY=VALUE"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --rep-delay 900", "outside the backend's range [0, 500] us"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --plan student", "unknown plan 'student'"),
    ("sample --checkpoint {ckpt} --device ibm-estimator --backend fake_guadalupe --mitigate-readout", "the estimator mitigates"),
    ("sample --checkpoint {ckpt} --device ibm-estimator --backend fake_guadalupe --m3", "the estimator mitigates"),
    ("sample --checkpoint {ckpt} --device ibm --backend fake_guadalupe --m3 --mitigate-readout", "choose one"),
    ("sample --checkpoint {ckpt} --device emulator --m3", "--m3 applies to device kind ibm"),
    ("sample --checkpoint {ckpt} --device pennylane --pl-device nowhere.qubit", "not installed; installed: default.clifford"),
    ("sample --checkpoint {ckpt} --device pennylane --pl-option wires=4", "has 4 wires; the circuits need 12"),
    ("sample --checkpoint {ckpt} --device pennylane --pl-option color=1", "PennyLane could not build 'default.qubit'"),
    ("sample --checkpoint {ckpt} --device pennylane --backend fake_torino", "--backend does not apply"),
    ("sample --resume {folder}", "no run manifest"),
    ("sample --resume {folder} --device shots", "drop --device"),
    ("sample --checkpoint {text}", "unreadable or corrupt (not a file torch.save wrote)"),
    ("sample --checkpoint nowhere.pt", "checkpoint nowhere.pt does not exist"),
    ("sample --checkpoint {ckpt} --arch 1hqconv", "expected '1hqconv'"),
    ("sample --checkpoint {ckpt} --out {text}", "is not a folder"),
    ("sample --checkpoint {ckpt} --torch-device xyz", "--torch-device"),
    ("sample --checkpoint {ckpt} --device {type}", "shots must be int"),
    ("sample --checkpoint {ckpt} --device {syntax}", "not valid TOML"),
    ("sample", "--checkpoint is required"),
    # evaluate
    ("evaluate", "exactly one of --checkpoint or --samples"),
    ("evaluate --checkpoint {ckpt} --samples {bare_pt}", "exactly one"),
    ("evaluate --samples {text}", "unreadable"),
    ("evaluate --samples {bare_pt}", "holds no 'images'"),
    ("evaluate --samples {shape_pt}", "holds no 'images'"),
    ("evaluate --samples {noimages_pt}", "holds no 'images'"),
    ("evaluate --samples {nan_pt}", "non-finite"),
    ("evaluate --samples nowhere.pt", "samples file nowhere.pt does not exist"),
    ("evaluate --checkpoint {ckpt} --backbone vgg", "unknown backbone 'vgg'"),
    ("evaluate --checkpoint {ckpt} --backbone inception", "inception-2015-12-05.pt"),
    ("evaluate --checkpoint {ckpt} --num-real 1", "--num-real"),
    ("evaluate --checkpoint {ckpt} --num 1", "--num"),
    ("evaluate --checkpoint {ckpt} --out {folder}", "is a folder"),
    ("evaluate --checkpoint {ckpt} --dataset cifar10", "unknown dataset 'cifar10'"),
    # report
    ("report --checkpoint {ckpt} --devices ,", "--devices is empty"),
    ("report --checkpoint {ckpt} --devices qpu:x", "unknown device kind 'qpu'"),
    ("report --checkpoint {ckpt} --devices emulator:fake_torino@1+exact+exact", "repeated"),
    ("report --checkpoint {ckpt} --devices emulator:fake_torino@1+zne+zne-linear", "zne (once)"),
    ("report --checkpoint {ckpt} --devices emulator:fake_torino@1+zne-cubic", "unknown or repeated"),
    ("report --checkpoint {ckpt} --devices aer-noisy:fake_torino@1+exact", "unknown or repeated"),
    ("report --checkpoint {ckpt} --devices noiseless,noiseless", "repeats a setting"),
    ("report --checkpoint {ckpt} --devices emulator:nowhere@1", "unknown calibration 'nowhere'"),
    ("report --checkpoint {ckpt} --devices emulator:fake_torino@1+zne+zne", "unknown or repeated"),
    ("report --checkpoint {ckpt} --num 0", "--num"),
    ("report --checkpoint {ckpt} --num 1", "--num must be at least 2"),
    ("report --checkpoint {ckpt} --data-dir nowhere", "--data-dir nowhere does not exist"),
    ("evaluate --checkpoint {ckpt} --data-dir nowhere", "--data-dir nowhere does not exist"),
    ("report --checkpoint {ckpt} --steps 0", "DDIM steps"),
    ("report --checkpoint {ckpt} --batch-size 0", "--batch-size"),
    ("report --checkpoint {ckpt} --shots 1", "--shots"),
    ("report --checkpoint {ckpt} --trajectories 0", "--trajectories"),
    ("report --checkpoint {ckpt} --bootstrap -5", "--bootstrap"),
    ("report --checkpoint {ckpt} --num-real 1", "--num-real"),
    ("report --checkpoint {ckpt} --eta nan", "--eta"),
    ("report --checkpoint {ckpt} --seed -1", "--seed"),
    ("report --checkpoint {ckpt} --backbone vgg", "unknown backbone 'vgg'"),
    ("report --checkpoint {ckpt} --out {text}", "is not a folder"),
    ("report --checkpoint nowhere.pt", "nowhere.pt does not exist"),
    ("report", "--checkpoint is required"),
    ("report --render nowhere", "holds no study.json"),
    # calibration, devices, export
    ("calibration pull --backend fake_guadalupe --name ../../x", "not a plain file name"),
    ("calibration pull --backend fake_guadalupe --out {text}", "is not a folder"),
    ("calibration pull --backend ibm_kyiv", "no IBM Quantum account"),
    ("calibration show nowhere", "unknown calibration 'nowhere'"),
    ("calibration diff fake_torino nowhere", "unknown calibration 'nowhere'"),
    ("calibration diff fake_torino {empty}", "not valid JSON"),
    ("calibration show {empty}", "not valid JSON"),
    ("calibration show {nokeys}", "lacks"),
    ("devices inspect --checkpoint {ckpt} --device noiseless", "needs a device of kind"),
    ("devices inspect --checkpoint nowhere.pt", "nowhere.pt does not exist"),
    ("export --checkpoint nowhere.pt --out m", "nowhere.pt does not exist"),
    ("export --checkpoint {ckpt} --out {text}", "is not a folder"),
]


@pytest.mark.parametrize("command, message", CASES, ids=[c for c, _ in CASES])
def test_bad_command_line(command, message, files, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"  # (tmp_path itself holds the test's isolated IBM account file)
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = {"cwd": _snapshot(cwd), "inputs": _snapshot(files["text"].parent)}
    args = [a.format(**files) for a in command.split()]
    res = CliRunner().invoke(app, args)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert "Traceback" not in res.output and "bug" not in res.output
    assert {"cwd": _snapshot(cwd), "inputs": _snapshot(files["text"].parent)} == before  # nothing written


def test_a_real_backend_that_cannot_be_reached_is_one_line(tiny_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "dummy")
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:dummy")
    res = CliRunner().invoke(app, ["sample", "--checkpoint", str(tiny_checkpoint("classical")), "--device", "ibm",
                                   "--backend", "ibm_brisbane", "--out", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2 and "could not reach IBM Quantum" in res.output and "fake_sherbrooke" in res.output
    assert "dummy" not in res.output.replace("crn:dummy", "") and not (tmp_path / "x").exists()


def test_a_full_disk_is_one_line_naming_the_file(tiny_checkpoint, monkeypatch, tmp_path):
    import errno

    import nisqdiff.files

    real_replace = nisqdiff.files.os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nisqdiff.files.os, "replace", full)
    res = CliRunner().invoke(app, ["export", "--checkpoint", str(tiny_checkpoint("classical")), "--out", str(tmp_path / "m")])
    monkeypatch.setattr(nisqdiff.files.os, "replace", real_replace)
    assert res.exit_code == 2 and "model.safetensors: No space left on device" in res.output, res.output
    assert not list((tmp_path / "m").glob("*.tmp"))  # the temporary file is gone


def test_a_second_writer_is_refused_naming_the_holder(tiny_checkpoint, tmp_path, data_dir):
    import os

    from nisqdiff.files import RunLock

    ckpt = str(tiny_checkpoint("classical"))
    with RunLock(tmp_path / "busy"):
        for args in (["sample", "--checkpoint", ckpt, "--num", "2", "--steps", "2", "--out", str(tmp_path / "busy")],
                     ["report", "--checkpoint", ckpt, "--devices", "noiseless", "--num", "2", "--steps", "2",
                      "--data-dir", str(data_dir), "--out", str(tmp_path / "busy")],
                     ["export", "--checkpoint", ckpt, "--out", str(tmp_path / "busy")]):  # fmt: skip
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 2 and f"in use by another nisqdiff run (PID {os.getpid()})" in res.output, res.output
    assert [p.name for p in (tmp_path / "busy").iterdir()] == [".nisqdiff.lock"]


def test_there_are_at_least_60_cases_across_every_command():
    commands = {c.split()[0] + (" " + c.split()[1] if c.split()[0] in ("calibration", "devices") else "") for c, _ in CASES}
    assert len(CASES) >= 60
    assert {"train", "sample", "evaluate", "report", "export", "calibration pull", "calibration show", "devices inspect"} <= commands


def test_a_bare_library_message_is_named_by_its_exception_type():
    from nisqdiff.errors import reason

    assert reason(KeyError(105)) == "KeyError: 105"  # what torch.load raised for a two-byte text file
    assert reason(OSError("disk full")) == "disk full"
    assert reason(RuntimeError()) == "RuntimeError"
