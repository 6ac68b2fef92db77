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


def test_placement_leases_whole_gpus_and_says_what_it_lacks():
    placement = LocalPlacement(capacity=8, gpus=parse_config("A100:2,L4:1"))
    woken = []
    first, second = placement.lease("f", parse_request("A100"), lambda: woken.append(1), count=2)
    assert {first.gpus[0].index, second.gpus[0].index} == {0, 1}
    assert placement.lease("f", parse_request("A100"), lambda: woken.append(1)) == []  # both busy
    assert placement.lease("g", parse_request("L4"), lambda: None)[0].gpus[0].model == "L4"
    given = list(first.gpus)
    placement.release(first)
    assert woken == [1]
    assert placement.lease("f", parse_request("A100"), lambda: None)[0].gpus == given
    with pytest.raises(InvalidError, match="needs 1 x H100 GPU, and this machine has A100, L4"):
        placement.check(parse_request("H100"), "train")
    with pytest.raises(InvalidError, match="needs 3 x A100"):
        placement.check(parse_request("A100:3"), "train")


def test_placement_leases_at_most_its_capacity_and_asks_idle_holders_for_room():
    placement = LocalPlacement(capacity=3)
    asked = []

    class Holder:
        def release_idle(self, n: int) -> int:
            asked.append(n)
            return n

    placement.register("other", Holder())
    woken = []
    leases = placement.lease("f", None, lambda: woken.append(1), count=5)
    assert len(leases) == 3 and placement.used == 3
    assert asked == [2]  # the two it was short, from the other function's idle containers
    placement.release(leases[0])
    assert woken == [1] and placement.used == 2
