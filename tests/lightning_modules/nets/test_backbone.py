"""``lightning_modules/nets/backbone.py``: local pretrained weights, checked before they load."""

from __future__ import annotations

import logging

import pytest
import timm
import torch
from safetensors.torch import save_file

from dermlab.errors import DataError
from lightning_modules.nets.backbone import create_backbone


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_load_and_the_head_is_reinitialised(tmp_path, suffix):
    source = timm.create_model("test_resnet", num_classes=10)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    model = create_backbone("test_resnet", num_classes=2, pretrained_weights=str(path))
    loaded = model.state_dict()
    body = [k for k in state if not k.startswith("fc.")]
    assert body and all(torch.equal(loaded[k], state[k]) for k in body)
    assert loaded["fc.weight"].shape == (2, state["fc.weight"].shape[1])


def test_random_init_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        create_backbone("test_resnet", num_classes=2)
    assert "RANDOM initialisation" in caplog.text


def test_missing_or_pickled_weights_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="do not exist"):
        create_backbone("test_resnet", 2, str(tmp_path / "absent.pth"))
    evil = tmp_path / "pickled.pth"
    torch.save({"net": object()}, evil)  # not loadable with weights_only=True
    with pytest.raises(DataError, match="cannot load weights"):
        create_backbone("test_resnet", 2, str(evil))


def test_a_file_of_another_layout_is_refused_naming_a_tensor_it_lacks(tmp_path):
    """timm loads non-strictly when the class count differs: without the check, a file whose names do not match
    would leave every layer at random init and say it loaded."""
    state = timm.create_model("test_resnet", num_classes=10).state_dict()
    renamed = {f"backbone.{k}": v.contiguous() for k, v in state.items()}  # another project's prefix
    save_file(renamed, tmp_path / "renamed.safetensors")
    with pytest.raises(DataError, match=r"cannot load weights '.*renamed.safetensors' into test_resnet: the file "
                                        r"holds the network's tensors under the prefix 'backbone.' "
                                        r"\('backbone.conv1.0.weight' for 'conv1.0.weight'\); save them without it"):
        create_backbone("test_resnet", 2, str(tmp_path / "renamed.safetensors"))
    other = {f"{i}.weight": v.contiguous() for i, v in enumerate(state.values())}  # another project's names
    save_file(other, tmp_path / "other.safetensors")
    with pytest.raises(DataError, match=r"into test_resnet: the file has no 'conv1.0.weight' \(\d+ of the "
                                        r"network's tensors .*dermlab weights import"):
        create_backbone("test_resnet", 2, str(tmp_path / "other.safetensors"))
    partial = {k: v.contiguous() for k, v in state.items() if not k.startswith("layer4.")}  # a truncated export
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(DataError, match=r"the file has no 'layer4\.0\.conv1\.weight'"):
        create_backbone("test_resnet", 2, str(tmp_path / "partial.pth"))
    # the classifier and BatchNorm's counters may be absent: the body is what must load
    body = {k: v.contiguous() for k, v in state.items() if not k.startswith("fc.") and "num_batches" not in k}
    save_file(body, tmp_path / "body.safetensors")
    model = create_backbone("test_resnet", 2, str(tmp_path / "body.safetensors"))
    assert torch.equal(model.state_dict()["conv1.0.weight"], state["conv1.0.weight"])


def test_a_damaged_or_misshapen_weights_file_is_named_with_what_is_wrong(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("test_resnet").state_dict().items()}, good)
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:50])
    (tmp_path / "empty.safetensors").write_bytes(b"")
    for name in ("truncated.safetensors", "empty.safetensors"):
        with pytest.raises(DataError, match=rf"cannot load weights '.*{name}' into test_resnet: the file is damaged "
                                            r"or not a safetensors file \(.*\); copy it again"):
            create_backbone("test_resnet", 2, str(tmp_path / name))
    state = {k: v.contiguous() for k, v in timm.create_model("test_resnet").state_dict().items()}
    state["conv1.0.weight"] = torch.zeros(3, 3, 3, 3)
    save_file(state, tmp_path / "misshapen.safetensors")
    with pytest.raises(DataError, match=r"into test_resnet: size mismatch for conv1.0.weight: copying a param with "
                                        r"shape torch.Size\(\[3, 3, 3, 3\]\)"):
        create_backbone("test_resnet", 2, str(tmp_path / "misshapen.safetensors"))
