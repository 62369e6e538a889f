"""tensim.matrix_pairs and tensim.assemble: a matrix in blocks of pairs,
bit for bit tensim.matrix's (no Ray needed)."""
import os

import numpy as np
import pytest

import tensim


def classifier_files(directory, count):
    paths = []
    for s in range(count):
        rng = np.random.default_rng(s)
        m = tensim.bilinear_classifier(rng.normal(size=(5, 7)), rng.normal(size=(5, 7)),
                                       rng.normal(size=(3, 5)))
        paths.append(os.path.join(directory, f"m{s}.safetensors"))
        m.save(paths[-1])
    return paths


def test_blocks_of_pairs_assemble_to_the_matrix(tmp_path):
    paths = classifier_files(tmp_path, 4)
    models = [tensim.load(p) for p in paths]
    upper = [(0, 0), (0, 1), (1, 1)]
    rest = [(i, j) for i in range(4) for j in range(i, 4) if (i, j) not in upper]
    for metric in ("tensor", "gaussian-slice:1", "matrix-cosine"):
        blocks = [tensim.matrix_pairs(paths, upper, metric), tensim.matrix_pairs(paths, rest, metric)]
        pairs, values = blocks[0]
        assert pairs.tolist() == [list(p) for p in upper]
        assert values.shape == (3, 3 if metric != "matrix-cosine" else 1)
        assert np.array_equal(tensim.assemble(metric, 4, blocks), tensim.matrix(models, metric=metric))


def test_a_block_reads_only_the_files_of_its_pairs(tmp_path):
    paths = classifier_files(tmp_path, 3) + [str(tmp_path / "never-read.safetensors")]
    pairs, _ = tensim.matrix_pairs(paths, [(0, 2), (1, 1)], threads=1)
    assert pairs.tolist() == [[0, 2], [1, 1]]
    with pytest.raises(ValueError, match="never-read.safetensors"):
        tensim.matrix_pairs(paths, [(2, 3)])


def test_assemble_refuses_missing_and_repeated_pairs(tmp_path):
    paths = classifier_files(tmp_path, 3)
    a = tensim.matrix_pairs(paths, [(0, 0), (0, 1), (1, 1)])
    b = tensim.matrix_pairs(paths, [(0, 2), (1, 2), (2, 2)])
    with pytest.raises(ValueError, match=r"pair \(0, 2\) is in none"):
        tensim.assemble("tensor", 3, [a])
    with pytest.raises(ValueError, match=r"pair \(0, 0\) is in two blocks"):
        tensim.assemble("tensor", 3, [a, a, b])
    with pytest.raises(ValueError, match=r"pair \(1, 0\) is not a pair"):
        tensim.matrix_pairs(paths, [(1, 0)])
    with pytest.raises(ValueError, match="given twice"):
        tensim.matrix_pairs(paths, [(1, 2), (1, 2)])
    with pytest.raises(ValueError, match="needs inputs"):
        tensim.matrix_pairs(paths, [], "output-cosine")
