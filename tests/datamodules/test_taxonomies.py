"""``datamodules/taxonomies.py``: class mappings between data sets, by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules import HAM10000DataModule, VitiligoDataModule
from datamodules.taxonomies import TAXONOMIES, ClassMapping, known_pairs, mapping_between
from dermlab.errors import DataError
from dermlab.metrics.logged import classification_metrics, metric_input
from tests.helpers.cross_dataset import HAM

ISIC2019 = TAXONOMIES["isic2019"]


def toy(from_source: dict, from_target: dict, classes=("x", "y"), target=("x", "y")) -> ClassMapping:
    return ClassMapping("abc", "xy", ("a", "b", "c"), tuple(target), tuple(classes), from_source, from_target)


P = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])  # 3 images × 3 source classes


def test_probabilities_merge_by_summing_and_metrics_are_on_the_target_classes():
    mapping = toy({"a": "x", "b": "x", "c": "y"}, {"x": "x", "y": "y"})
    merged = mapping.merge(P)
    assert torch.allclose(merged, torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    labels = torch.as_tensor(mapping.target_labels(np.array([0, 1, 1])))  # x, y, y
    metrics = classification_metrics(mapping.classes)
    metrics.update(metric_input(merged), labels)
    values = {k: float(v) for k, v in metrics.compute().items()}
    # P(y) = 0.2 (x), 0.7 (y), 0.4 (y): both y above the x → AUC 1; at p > 0.5 only image 2 is called y
    assert values["auc"] == pytest.approx(1.0)
    assert values["accuracy"] == pytest.approx(2 / 3)
    assert values["sensitivity"] == pytest.approx(1 / 2) and values["specificity"] == pytest.approx(1.0)


def test_a_source_class_without_evaluation_class_drops_out_and_rows_are_renormalised():
    mapping = toy({"a": "x", "b": "y", "c": None}, {"x": "x", "y": "y"})
    assert torch.allclose(mapping.merge(P), torch.tensor([[0.5 / 0.8, 0.3 / 0.8], [1 / 3, 2 / 3], [0.5, 0.5]]))
    # target side: z has no evaluation class, so its images are -1 (left out)
    left = toy({"a": "x", "b": "y", "c": None}, {"x": "x", "y": "y", "z": None}, target=("x", "y", "z"))
    assert left.target_labels(np.array([0, 2, 1])).tolist() == [0, -1, 1]


def test_three_class_merge_and_balanced_accuracy_by_hand():
    mapping = ClassMapping("abcd", "xyz", ("a", "b", "c", "d"), ("x", "y", "z"), ("x", "y", "z"),
                           {"a": "x", "b": "y", "c": "z", "d": "z"}, {"x": "x", "y": "y", "z": "z"})
    p = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]])
    merged = mapping.merge(p)
    # the third image: z gets 0.2 + 0.2 = 0.4 > 0.3, so it is called z although no single source class wins
    assert torch.allclose(merged, torch.tensor([[0.4, 0.3, 0.3], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]]))
    metrics = classification_metrics(mapping.classes)
    metrics.update(merged, torch.tensor([0, 2, 2]))  # truths x, z, z: recall x 1/1, z 1/2 (y has no image)
    values = metrics.compute()
    assert float(values["recall_x"]) == pytest.approx(1.0) and float(values["recall_z"]) == pytest.approx(0.5)


def test_the_isic2018_isic2019_mapping_both_ways():
    to_2019 = mapping_between(HAM, ISIC2019)
    assert to_2019.classes == HAM and to_2019.name == "isic2018 → isic2019"
    # a 2019 AK image and a 2019 SCC image are both scored as AKIEC by a HAM10000 model
    assert to_2019.target_labels(np.array([ISIC2019.index("AK"), ISIC2019.index("SCC"), 0])).tolist() == [3, 3, 0]
    from_2019 = mapping_between(ISIC2019, HAM)
    p = torch.zeros(1, 8)
    p[0, ISIC2019.index("AK")], p[0, ISIC2019.index("SCC")], p[0, 0] = 0.1, 0.2, 0.7
    assert torch.allclose(from_2019.merge(p), torch.tensor([[0.7, 0, 0, 0.3, 0, 0, 0]]))


def test_mappings_through_the_hub():
    to_2017 = mapping_between(HAM, TAXONOMIES["isic2017_three_class"])
    assert to_2017.classes == ("nevus", "melanoma", "seborrheic_keratosis")
    assert [c for c, v in to_2017.from_source.items() if v is None] == ["BCC", "AKIEC", "DF", "VASC"]
    from_2017 = mapping_between(TAXONOMIES["isic2017_three_class"], HAM)
    assert from_2017.classes == ("MEL", "NV", "BKL")
    assert from_2017.target_labels(np.arange(7)).tolist() == [0, 1, -1, -1, 2, -1, -1]
    to_2016 = mapping_between(ISIC2019, ("benign", "malignant"))  # 2019 → hub → 2016
    assert [c for c in ISIC2019 if to_2016.from_source[c] == "malignant"] == ["MEL", "BCC", "AK", "SCC"]
    to_derm = mapping_between(ISIC2019, TAXONOMIES["derm7pt"])  # AKIEC has no derm7pt image: AK, SCC drop out
    assert to_derm.classes == TAXONOMIES["derm7pt"] and to_derm.from_source["AK"] is None
    assert mapping_between(("No", "Yes"), ("No", "Yes")).identity  # same classes: identity, known set or not
    assert "isic2018 → isic2019" in known_pairs() and "isic2019 → isic2017_melanoma" in known_pairs()


def test_a_pair_without_a_mapping_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(DataError, match="no class mapping from isic2016 .* to isic2017_melanoma .*Known pairs: "
                                        ".*isic2018 → isic2019"):
        mapping_between(("benign", "malignant"), ("other", "melanoma"))
    data = HAM10000DataModule(str(tmp_path), test_on=VitiligoDataModule(str(tmp_path), classes=["No", "Yes"]))
    with pytest.raises(DataError, match="to an unknown class set \\(No, Yes\\)"):
        _ = data.test_mapping


def test_the_external_sets_by_hand():
    """DDI (benign / malignant, named ddi), Fitzpatrick17k (non-neoplastic left out) and PAD-UFES-20 (six classes
    onto five HAM classes), each from a HAM10000 model: probabilities merged and labels mapped by hand."""
    p = torch.tensor([[0.1, 0.2, 0.3, 0.05, 0.15, 0.1, 0.1]])  # MEL NV BCC AKIEC BKL DF VASC
    ddi = mapping_between(HAM, ("benign", "malignant"), "ddi")
    assert ddi.name == "isic2018 → ddi" and ddi.classes == ("benign", "malignant")
    assert torch.allclose(ddi.merge(p), torch.tensor([[0.55, 0.45]]))  # malignant = MEL + BCC + AKIEC
    fitz = mapping_between(HAM, TAXONOMIES["fitzpatrick17k"])
    assert fitz.classes == ("benign", "malignant") and torch.allclose(fitz.merge(p), torch.tensor([[0.55, 0.45]]))
    assert fitz.target_labels(np.array([0, 1, 2, 1])).tolist() == [0, 1, -1, 1]  # non-neoplastic: left out
    pad = mapping_between(HAM, TAXONOMIES["pad_ufes20"])
    assert pad.classes == ("MEL", "NV", "BCC", "AKIEC", "BKL")
    # DF and VASC drop out and the row is renormalised: 0.1, 0.2, 0.3, 0.05, 0.15 over 0.8
    assert torch.allclose(pad.merge(p), torch.tensor([[0.125, 0.25, 0.375, 0.0625, 0.1875]]))
    # ACK BCC MEL NEV SCC SEK → AKIEC BCC MEL NV AKIEC BKL
    assert pad.target_labels(np.arange(6)).tolist() == [3, 2, 0, 1, 3, 4]
    from_2019 = mapping_between(ISIC2019, TAXONOMIES["pad_ufes20"])
    assert from_2019.from_source["AK"] == from_2019.from_source["SCC"] == "AKIEC"
