"""`kubetune validate-weights`: the validation step's check of customWeightsPath, as the trainer resolves it."""

from kubetune.api import checkpoints
from kubetune.cli.main import main


def test_a_complete_checkpoint_passes_and_a_missing_one_says_why(tmp_path, capsys):
    run_dir = checkpoints.run_checkpoint_dir(tmp_path, "earlier")
    (run_dir / "ep1-ba5").mkdir(parents=True)
    assert main(["validate-weights", "earlier", "--checkpoint-root", str(tmp_path)]) == 1  # no COMPLETE marker yet
    assert "names no complete checkpoint" in capsys.readouterr().out
    checkpoints.mark_complete(run_dir / "ep1-ba5")
    checkpoints.point_latest(run_dir, "ep1-ba5")
    assert main(["validate-weights", "earlier", "--checkpoint-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: earlier is the complete checkpoint {run_dir / 'ep1-ba5'}")
    assert main(["validate-weights", "pvc://weights/x", "--checkpoint-root", str(tmp_path), "--pvc-mount-root", str(tmp_path)]) == 1
