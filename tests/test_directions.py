"""S32's attribute directions: the split into orthogonal moves and holds (nets.directions), the fit from
verdicts (train.directions) and their file round trip (weights)."""

import pytest
import torch

from faceattr import weights
from faceattr.errors import FaceattrError
from faceattr.nets.directions import Directions
from faceattr.train.directions import corpus_files, fit


def test_moves_are_orthogonal_to_every_other_attribute_and_unit_without_a_corpus():
    d = Directions(["A", "B", "C"], dim=6)
    d.vectors.copy_(torch.nn.functional.normalize(torch.randn(3, 6, generator=torch.Generator().manual_seed(0)), dim=1))
    moves, holds = d.split(["A", "C"], ["B"])
    torch.testing.assert_close(moves.norm(dim=1), torch.ones(2))
    assert abs(float(moves[0] @ d.vectors[1])) < 1e-6 and abs(float(moves[0] @ d.vectors[2])) < 1e-6
    assert abs(float(moves[1] @ d.vectors[0])) < 1e-6
    torch.testing.assert_close(holds, d.vectors[[1]])
    with pytest.raises(FaceattrError, match="cover A, B, C, not Bald"):
        d.split(["Bald"], [])


def test_moves_and_holds_are_one_corpus_standard_deviation_long():
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(20000, 3, generator=gen) * torch.tensor([3.0, 1.0, 0.5])
    d, _ = fit(w, (w > 0).float(), ["A", "B", "C"], l2=1e-4, holdout=0.2)
    moves, holds = d.split(["A", "C"], ["B"])
    torch.testing.assert_close(moves.norm(dim=1), torch.tensor([3.0, 0.5]), rtol=0.03, atol=0)
    torch.testing.assert_close(holds.norm(dim=1), torch.tensor([1.0]), rtol=0.03, atol=0)
    torch.testing.assert_close((w @ (moves / moves.norm(dim=1, keepdim=True)).T).std(0), moves.norm(dim=1))


def test_fit_recovers_a_planted_direction():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3000, 16, generator=gen)
    truth = torch.nn.functional.normalize(torch.randn(2, 16, generator=gen), dim=1)
    verdicts = (w @ truth.T > 0.3).float()
    d, accuracy = fit(w, verdicts, ["A", "B"], l2=1e-4, holdout=0.2)
    cos = (d.vectors * truth).sum(1)
    assert torch.all(cos > 0.97) and all(a > 0.95 for a in accuracy.values())


def test_directions_file_round_trip(tmp_path):
    d = Directions(["A", "B"], dim=4)
    d.vectors.copy_(torch.eye(4)[:2])
    d.covariance.mul_(4.0)
    path = tmp_path / "d.safetensors"
    weights.save(d, path, "directions", d.net_config(), half=False)
    back = weights.load_directions(path)
    assert back.attr_names == ["A", "B"] and torch.equal(back.vectors, d.vectors)
    assert torch.equal(back.covariance, d.covariance)
    with pytest.raises(FaceattrError, match="holds 'directions' weights, expected 'enet'"):
        weights.load(path, "enet")


def test_directions_file_without_a_covariance_is_refused_in_one_line(tmp_path):
    d, old = Directions(["A", "B"], dim=4), torch.nn.Module()
    old.register_buffer("vectors", d.vectors)
    path = tmp_path / "old.safetensors"
    weights.save(old, path, "directions", d.net_config(), half=False)
    with pytest.raises(FaceattrError, match="no corpus covariance.*rerun `faceattr train directions`"):
        weights.load_directions(path)


def test_a_corpus_not_named_by_seed_is_refused(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "img_align_celeba" / "face.jpg").write_bytes(b"")
    with pytest.raises(FaceattrError, match="0 faces named by seed"):
        corpus_files(tmp_path, 100)
    with pytest.raises(FaceattrError, match="no img_align_celeba"):
        corpus_files(tmp_path / "nowhere", 100)
