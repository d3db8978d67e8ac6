"""Detection, alignment to the corpus template and paste-back, on the bundled astronaut photo."""


import cv2
import numpy as np
import pytest
from PIL import Image

from faceattr.data.images import demo_photo, load_photo
from faceattr.edit import align
from faceattr.errors import FaceattrError

@pytest.fixture(scope="module")
def astronaut():
    return load_photo(demo_photo())


@pytest.fixture(scope="module")
def face(astronaut):
    faces = align.detect_faces(astronaut)
    assert len(faces) == 1
    return faces[0]


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    a, s, t = 0.3, 1.7, np.array([12.0, -5.0])
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = align.similarity(src, src @ rot.T + t)
    assert np.allclose(m, np.hstack([rot, t[:, None]]), atol=1e-9)


def test_astronaut_aligns_onto_the_template(astronaut, face):
    """The landmarks land on the template, and re-detected in the aligned crop they are still there:
    the constant aligns a face to itself (to within the corpus' own spread, 1-2% of the side)."""
    size = 128
    a = align.align(astronaut, face, size)
    assert a.crop.shape == (size, size, 3) and a.crop.dtype == np.uint8 and a.matrix.shape == (2, 3)
    moved = cv2.transform(face.landmarks[None].astype(np.float64), a.matrix)[0]
    assert np.abs(moved - align.template_points(size)).max() < 0.03 * size  # 5 points, 4 dof: a close fit
    (again,) = align.detect_faces(a.crop)
    assert np.abs(again.landmarks - align.template_points(size)).max() < 0.03 * size


def test_template_is_the_corpus_mean(synth_faces):
    files = sorted(synth_faces.glob("*.jpg"))  # other faces than the 500 the constant came from
    assert len(files) == 32
    lms = []
    for f in files:
        faces = align.detect_faces(np.asarray(Image.open(f).convert("RGB")))
        lms += [(faces[0].landmarks + 0.5) / 128] if faces else []
    assert len(lms) > len(files) * 5 / 6  # as > 50 of 60 before
    assert np.abs(np.mean(lms, axis=0) - align.TEMPLATE).max() < 0.01


def test_large_faces_are_downscaled_with_antialiasing(astronaut, face):
    """A 4x upscaled photo aligns to the same 64 px crop as the original (area averaging, no aliasing)."""
    big = cv2.resize(astronaut, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    scaled = align.Face(box=face.box * 4, landmarks=(face.landmarks + 0.5) * 4 - 0.5, score=face.score)
    small, large = align.align(astronaut, face, 64).crop, align.align(big, scaled, 64).crop
    assert np.abs(small.astype(int) - large.astype(int)).mean() < 4


def test_native_size_follows_the_face(astronaut, face):
    n = align.native_size(face)
    assert 64 <= n <= 1024
    big = align.Face(box=face.box * 2, landmarks=face.landmarks * 2, score=1.0)
    assert abs(align.native_size(big) - 2 * n) <= 2


def test_paste_back_changes_only_the_face(astronaut, face):
    a = align.align(astronaut, face, 96)
    red = np.zeros_like(a.crop)
    red[..., 0] = 255
    out = align.paste_back(astronaut, red, a.matrix)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - astronaut.astype(int)).max(-1) > 0
    ys, xs = np.nonzero(changed)
    x, y, w, h = face.box
    # every changed pixel lies within the face's neighbourhood; far pixels are bit-identical
    assert xs.min() > x - w and xs.max() < x + 2 * w and ys.min() > y - h and ys.max() < y + 2 * h
    far = np.ones(changed.shape, bool)
    far[max(0, int(y - h)):int(y + 2 * h), max(0, int(x - w)):int(x + 2 * w)] = False
    assert far.sum() > 0.5 * far.size and np.array_equal(out[far], astronaut[far])
    # the face centre is fully replaced, the mask is soft at its edge
    cx, cy = cv2.transform(np.array([[[0.495 * 96, 0.60 * 96]]]), cv2.invertAffineTransform(a.matrix))[0, 0]
    assert (out[int(cy), int(cx)] == [255, 0, 0]).all()
    assert changed.sum() > 0 and ((out[..., 0] > astronaut[..., 0]) & (out[..., 0] < 250)).sum() > 50


def test_paste_back_of_the_unedited_crop_is_invisible(astronaut, face):
    """Cut at the face's native size and pasted back untouched, the photo barely changes."""
    a = align.align(astronaut, face, align.native_size(face))
    out = align.paste_back(astronaut, a.crop, a.matrix)
    assert np.abs(out.astype(int) - astronaut.astype(int)).mean() < 0.5


def test_paste_back_at_photo_resolution(astronaut, face):
    """A 64 px crop is upsampled into a large photo: the photo keeps its size, the face is pasted smooth."""
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    f = align.Face(box=face.box * 2, landmarks=(face.landmarks + 0.5) * 2 - 0.5, score=1.0)
    a = align.align(big, f, 64)
    out = align.paste_back(big, a.crop, a.matrix)
    assert out.shape == big.shape
    assert np.abs(out.astype(int) - big.astype(int)).mean() < 1.0


def test_paste_back_of_a_change_keeps_the_photo_pixels(astronaut, face):
    """With the reference crop, only edited - reference goes back: no change leaves the photo
    bit-identical, a uniform +30 change lands at full strength in the face centre, nowhere else."""
    a = align.align(astronaut, face, 96)
    assert np.array_equal(align.paste_back(astronaut, a.crop, a.matrix, reference_crop=a.crop), astronaut)
    brighter = a.crop.astype(np.float32) + 30
    out = align.paste_back(astronaut, brighter, a.matrix, reference_crop=a.crop)
    cx, cy = cv2.transform(np.array([[[0.495 * 96, 0.60 * 96]]]), cv2.invertAffineTransform(a.matrix))[0, 0]
    centre = np.s_[int(cy) - 3:int(cy) + 3, int(cx) - 3:int(cx) + 3]
    assert np.array_equal(out[centre].astype(int), np.minimum(astronaut[centre].astype(int) + 30, 255))
    far = np.ones(astronaut.shape[:2], bool)
    x, y, w, h = face.box
    far[max(0, int(y - h)):int(y + 2 * h), max(0, int(x - w)):int(x + 2 * w)] = False
    assert np.array_equal(out[far], astronaut[far])


def test_match_colour_removes_a_colour_cast(astronaut, face):
    crop = align.align(astronaut, face, 64).crop
    cast = np.clip(crop.astype(int) * [0.8, 1.0, 1.2] + [20, -10, 0], 0, 255).astype(np.uint8)
    mask = align.face_mask(64)
    fixed = align.match_colour(cast, crop, mask)
    inside = mask > 0.5
    before = np.abs(cast[inside].astype(int) - crop[inside]).mean()
    after = np.abs(fixed[inside].astype(int) - crop[inside]).mean()
    assert after < before / 3
    # with a reference, the correction measured on the reference is applied to another image
    same = align.match_colour(crop, crop, mask, reference=cast)
    assert np.abs(same[inside].astype(int) - crop[inside]).mean() > before / 2  # the cast is removed from crop too


def test_face_mask_is_soft_and_centred():
    m = align.face_mask(100)
    assert m.shape == (100, 100) and m.max() == 1 and m[0].max() == 0 and m[:, 0].max() == 0
    assert 0 < m[60, 25] < 1 and m[60, 18] == 0 and m[60, 32] == 1  # a ramp inside the edge, not a step
    assert m[60, 50] == 1


def test_valid_marks_the_part_of_the_crop_inside_the_photo(astronaut, face):
    inside = align.align(astronaut, face, 64)
    assert inside.valid.shape == (64, 64) and inside.valid.min() > 0.99
    cut = astronaut[:, : int(face.box[0] + face.box[2] / 2)].copy()  # the photo ends mid-face
    part = align.align(cut, face, 64)
    assert part.valid[:, :20].min() > 0.99 and part.valid[:, -10:].max() == 0


def test_is_grey():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    grey = np.repeat(rgb[..., :1], 3, axis=2)
    assert align.is_grey(grey) and not align.is_grey(rgb)


def test_head_mask_covers_the_face_mask_and_more():
    face, head = align.face_mask(100), align.face_mask(100, region="head")
    assert np.all(head >= face - 1e-6) and head.sum() > 1.5 * face.sum()
    with pytest.raises(FaceattrError, match="unknown mask region"):
        align.face_mask(100, region="hair")
