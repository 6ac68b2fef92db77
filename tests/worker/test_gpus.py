import pytest

from skiff.exception import InvalidError
from skiff.protocol.gpus import Gpu, parse_config, parse_request
from skiff.server.placement import LocalPlacement
from skiff.worker.gpus import parse_nvidia_smi

NVIDIA_SMI = """\
0, NVIDIA H100 80GB HBM3, 81559, GPU-5b1c0f0e-aaaa-bbbb-cccc-000000000000
1, NVIDIA H100 80GB HBM3, 81559, GPU-5b1c0f0e-aaaa-bbbb-cccc-000000000001
2, NVIDIA A100-SXM4-40GB, 40960, GPU-5b1c0f0e-aaaa-bbbb-cccc-000000000002
"""


def test_parse_nvidia_smi():
    gpus = parse_nvidia_smi(NVIDIA_SMI)
    assert [g.index for g in gpus] == [0, 1, 2]
    assert gpus[2] == Gpu(2, "NVIDIA A100-SXM4-40GB", 40960, "GPU-5b1c0f0e-aaaa-bbbb-cccc-000000000002")
    assert parse_nvidia_smi("No devices were found\n") == []


def test_parse_config():
    assert [g.model for g in parse_config("A100-80GB:2, L4")] == ["A100-80GB", "A100-80GB", "L4"]
    with pytest.raises(InvalidError, match="SKIFF_GPUS entry"):
        parse_config("A100:two")


def test_requests_match_models_and_memory():
    gpus = parse_nvidia_smi(NVIDIA_SMI)
    assert [g.index for g in gpus if parse_request("H100").matches(g)] == [0, 1]
    assert [g.index for g in gpus if parse_request("A100").matches(g)] == [2]
    assert [g.index for g in gpus if parse_request("A100-80GB").matches(g)] == []  # it has 40 GB
    assert parse_request("any:2").count == 2 and all(parse_request("any").matches(g) for g in gpus)
    assert not parse_request("A10").matches(gpus[2])  # A10 is not A100
    with pytest.raises(InvalidError):
        parse_request("A100:9")


def test_placement_hands_out_whole_gpus_and_says_what_it_lacks():
    placement = LocalPlacement(capacity=8, gpus=parse_config("A100:2,L4:1"))
    woken = []
    first = placement.take_gpus(parse_request("A100"), "f", lambda: woken.append(1))
    second = placement.take_gpus(parse_request("A100"), "f", lambda: woken.append(1))
    assert {first[0].index, second[0].index} == {0, 1}
    assert placement.take_gpus(parse_request("A100"), "f", lambda: woken.append(1)) is None
    placement.give_back_gpus(first)
    placement.release()
    assert woken == [1]
    assert placement.take_gpus(parse_request("A100"), "f", lambda: None) == first
    with pytest.raises(InvalidError, match="needs 1 x H100 GPU, and this machine has A100, L4"):
        placement.check_gpus(parse_request("H100"), "train")
    with pytest.raises(InvalidError, match="needs 3 x A100"):
        placement.check_gpus(parse_request("A100:3"), "train")
