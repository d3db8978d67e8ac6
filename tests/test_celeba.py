import numpy as np
import pytest

from faceattr.data.celeba import default_split, read_attrs, read_partition, write_attrs, write_partition
from faceattr.errors import FaceattrError

# The head of CelebA's own list_attr_celeba.txt: aligned with double spaces, trailing space on line 2.
CELEBA_HEAD = """3
5_o_Clock_Shadow Arched_Eyebrows Male Smiling Young 
000001.jpg -1  1 -1  1  1
000002.jpg -1 -1 -1  1  1
000003.jpg -1 -1  1 -1  1
"""


def test_reads_celeba_format(tmp_path):
    p = tmp_path / "list_attr_celeba.txt"
    p.write_text(CELEBA_HEAD)
    names, files, values = read_attrs(p)
    assert names == ["5_o_Clock_Shadow", "Arched_Eyebrows", "Male", "Smiling", "Young"]
    assert files == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert values.dtype == np.int8
    assert values[:, names.index("Male")].tolist() == [-1, -1, 1]


def test_write_matches_celeba_layout_and_round_trips(tmp_path):
    p = tmp_path / "list_attr_celeba.txt"
    values = np.array([[-1, 1, -1, 1, 1], [-1, -1, -1, 1, 1], [-1, -1, 1, -1, 1]])
    names = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Male", "Smiling", "Young"]
    write_attrs(p, names, ["000001.jpg", "000002.jpg", "000003.jpg"], values)
    assert p.read_text() == CELEBA_HEAD.replace("Young \n", "Young\n")
    n2, f2, v2 = read_attrs(p)
    assert (n2, f2) == (names, ["000001.jpg", "000002.jpg", "000003.jpg"])
    assert np.array_equal(v2, values)
    write_attrs(p, ["Male"], [], np.zeros((0, 1)))
    assert read_attrs(p)[2].shape == (0, 1)


@pytest.mark.parametrize("text, where", [
    ("x\nMale\n", "line 1"),
    ("2\nMale Young\na.jpg 1 -1\n", "says 2 images but 1"),
    ("1\nMale Young\na.jpg 1\n", "line 3: expected a file name and 2 values"),
    ("2\nMale\na.jpg 1\nb.jpg 0\n", "line 4: values must be 1 or -1"),
    ("2\nMale\na.jpg 1\nb.jpg yes\n", "line 4: values must be 1 or -1"),
    ("2\nMale\na.jpg 1\na.jpg 1\n", "line 4: a.jpg is listed twice"),
    ("0\nMale Male\n", "line 2: duplicate"),
    ("0\n", "needs a count line"),
])
def test_malformed_attribute_files_name_file_and_line(tmp_path, text, where):
    p = tmp_path / "attrs.txt"
    p.write_text(text)
    with pytest.raises(FaceattrError) as e:
        read_attrs(p)
    assert str(p) in str(e.value) and where in str(e.value)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(FaceattrError, match="does not exist"):
        read_attrs(tmp_path / "nope.txt")
    with pytest.raises(FaceattrError, match="does not exist"):
        read_partition(tmp_path / "nope.txt")


def test_write_attrs_rejects_bad_input(tmp_path):
    p = tmp_path / "a.txt"
    with pytest.raises(ValueError, match="1 or -1"):
        write_attrs(p, ["Male"], ["a.jpg"], [[0]])
    with pytest.raises(ValueError, match="shape"):
        write_attrs(p, ["Male", "Young"], ["a.jpg"], [[1]])
    with pytest.raises(ValueError, match="spaces"):
        write_attrs(p, ["Male"], ["a b.jpg"], [[1]])
    assert not p.exists()


def test_partition_round_trip_and_errors(tmp_path):
    p = tmp_path / "list_eval_partition.txt"
    write_partition(p, ["a.jpg", "b.jpg", "c.jpg"], [0, 1, 2])
    assert p.read_text() == "a.jpg 0\nb.jpg 1\nc.jpg 2\n"
    assert read_partition(p) == {"a.jpg": 0, "b.jpg": 1, "c.jpg": 2}
    p.write_text("a.jpg 0\nb.jpg 3\n")
    with pytest.raises(FaceattrError, match=r"line 2: expected 'filename 0\|1\|2'"):
        read_partition(p)
    p.write_text("a.jpg 0\na.jpg 1\n")
    with pytest.raises(FaceattrError, match="line 2: a.jpg is listed twice"):
        read_partition(p)
    with pytest.raises(ValueError):
        write_partition(p, ["a.jpg"], [4])


def test_default_split_is_fixed_80_10_10_and_ignores_the_folder():
    # Frozen: changing the rule would move files between train and test of existing corpora.
    assert [default_split(f"{i:06d}.jpg") for i in range(10)] == [1, 0, 0, 0, 0, 0, 0, 1, 2, 1]
    assert default_split("img_align_celeba/000008.jpg") == default_split("000008.jpg") == 2
    splits = np.array([default_split(f"{i:06d}.jpg") for i in range(20000)])
    for code, share in ((0, 0.8), (1, 0.1), (2, 0.1)):
        assert abs((splits == code).mean() - share) < 0.01
