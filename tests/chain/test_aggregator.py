"""FLAggregator on the embedded chain: every function, the cosine rule and norm bound against
numpy oracles, FedAvg against numpy, and every bad input (revert, no state change)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from eth_abi import decode
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector, keccak
from web3.datastructures import AttributeDict

from chain_node.errors import ContractRevert
from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import (
    AggregatorClient,
    AggregatorConfig,
    checked_update,
    model_from_log,
)
from tbcim.blockchain.codec import (
    INT16_MAX,
    Verdict,
    fedavg,
    norm_squared,
    pack_history,
    pack_update,
)
from tbcim.errors import ConfigError, TbcimError

D = 40
EPSILON = 0.2
SIZES = (30, 50, 70, 90)


@pytest.fixture(scope="module")
def node() -> ChainNode:
    return ChainNode.embedded(n_servers=2, n_devices=4, seed=3)


def deploy(node: ChainNode, **overrides: float) -> AggregatorClient:
    config = AggregatorConfig(
        **{"num_params": D, "round_blocks": 3, "epsilon": EPSILON, "norm_bound": 3.0, **overrides}
    )
    return AggregatorClient.deploy(node, config, node.servers[0])


def ready(node: ChainNode, rng: np.random.Generator, **overrides: float) -> AggregatorClient:
    """Deployed, workers registered, initial model published, round 1 open."""
    client = deploy(node, **overrides)
    for device, size in zip(node.devices, SIZES, strict=True):
        client.register_worker(device, size)
    client.publish_initial_model(rng.integers(-2000, 2000, client.config.num_params))
    assert client.open_round() == 1
    return client


def snapshot(client: AggregatorClient) -> tuple:
    f = client.contract.functions
    accounts = [*client.node.devices, *client.node.servers]
    current = f.currentRound().call()
    return (
        current,
        f.globalModelHash().call(),
        f.totalData().call(),
        tuple(tuple(f.workers(a).call()) for a in accounts),
        tuple(f.historyHash(a).call() for a in accounts),
        tuple(tuple(f.rounds(r).call()) for r in range(current + 2)),
        client.node.block_number,
    )


def assert_reverts(client: AggregatorClient, action: Callable[[], object], error: str) -> tuple:
    before = snapshot(client)
    with pytest.raises(ContractRevert) as info:
        action()
    assert info.value.error_name == error
    assert snapshot(client) == before
    return info.value.error_args


def mean_cosine(w: np.ndarray, past: Sequence[np.ndarray]) -> float:
    """The paper's rule (section II-A): mean cosine similarity to the past accepted updates."""
    return float(np.mean([w @ p / (np.linalg.norm(w) * np.linalg.norm(p)) for p in past]))


def finish_round(client: AggregatorClient, round_: int) -> None:
    client.wait_for_deadline(round_)
    client.aggregate(round_)
    client.open_round()


# ------------------------------------------------------------------ happy paths


def test_round_fedavg_matches_numpy_within_one_step(node: ChainNode) -> None:
    rng = np.random.default_rng(0)
    client = ready(node, rng, num_params=1000)
    start = client.global_model()
    assert start.round == 0 and start.updates == 0
    floats = {dev: rng.normal(0, 0.05, 1000) for dev in node.devices[:3]}
    updates = {dev: client.codec.quantize(x) for dev, x in floats.items()}
    results = client.submit_round(1, updates)
    assert [r.verdict for r in results] == [Verdict.ACCEPTED] * 3
    assert_reverts(client, lambda: client.aggregate(1), "DeadlineNotReached")
    client.wait_for_deadline(1)
    client.aggregate(1)
    model = client.global_model()
    assert (model.round, model.updates, model.total_data) == (1, 3, sum(SIZES[:3]))
    weights = np.array(SIZES[:3], dtype=float)
    decoded = np.array([client.codec.dequantize(u) for u in updates.values()])
    numpy_avg = client.codec.dequantize(start.values) + weights @ decoded / weights.sum()
    error = np.abs(client.codec.dequantize(model.values) - numpy_avg)
    assert error.max() <= client.codec.step / 2 + 1e-12
    exact, _ = fedavg(start.values, list(updates.values()), SIZES[:3])
    assert model.values.tolist() == exact.tolist()
    assert client.global_model(0).values.tolist() == start.values.tolist()


def test_cosine_rule_and_norm_bound_follow_the_numpy_oracle(node: ChainNode) -> None:
    rng = np.random.default_rng(1)
    client = ready(node, rng)
    a, b, c, e = node.devices
    base = rng.normal(0, 200, D).round()
    first = {dev: base for dev in (a, b, c, e)}
    assert all(s.accepted for s in client.submit_round(1, first))  # no history: accepted
    finish_round(client, 1)

    orthogonal = rng.normal(0, 200, D)
    orthogonal = (orthogonal - (orthogonal @ base) / (base @ base) * base).round()
    second = {
        a: (base + rng.normal(0, 40, D)).round(),  # consistent
        b: -base,  # flipped
        c: orthogonal,  # orthogonal: mean cosine ~0 < epsilon
        e: 5 * base,  # cosine 1, norm 5x the past mean > k = 3
    }
    results = {s.device: s for s in client.submit_round(2, second)}
    for dev, w in second.items():
        assert results[dev].norm_squared == norm_squared(w)
    assert results[e].verdict == Verdict.NORM_BOUND
    for dev in (a, b, c):
        oracle = mean_cosine(second[dev], [base])
        assert abs(oracle - EPSILON) > 0.05
        expected = Verdict.ACCEPTED if oracle >= EPSILON else Verdict.COSINE
        assert results[dev].verdict == expected
    assert [results[d].verdict for d in (a, b, c)] == [
        Verdict.ACCEPTED,
        Verdict.COSINE,
        Verdict.COSINE,
    ]
    # a rejection leaves the worker's history untouched
    assert client.contract.functions.workers(b).call()[2] == 1
    assert bytes(client.contract.functions.historyHash(b).call()) == client.history(b).commitment()
    finish_round(client, 2)

    # round 3: the mean over two past accepted updates decides (a's history: base, second[a])
    past = [base, second[a]]
    for _ in range(20):
        w = (rng.normal(0, 1, D) * 200 + base * rng.uniform(-0.6, 0.6)).round()
        if abs(mean_cosine(w, past) - EPSILON) > 0.05 and np.linalg.norm(w) < np.linalg.norm(base):
            break
    else:  # pragma: no cover - the rng above always finds one
        pytest.fail("no test vector away from the threshold")
    (result,) = client.submit_round(3, {a: w})
    expected = Verdict.ACCEPTED if mean_cosine(w, past) >= EPSILON else Verdict.COSINE
    assert result.verdict == expected


def test_zero_update_is_rejected(node: ChainNode) -> None:
    client = ready(node, np.random.default_rng(2))
    result = client.submit(node.devices[0], 1, np.zeros(D, dtype=np.int64))
    assert result.verdict == Verdict.ZERO_UPDATE
    assert client.contract.functions.historyHash(node.devices[0]).call() == bytes(32)


def test_empty_round_is_skipped_by_the_next_open(node: ChainNode) -> None:
    client = ready(node, np.random.default_rng(3))
    assert_reverts(client, client.open_round, "RoundStillOpen")
    client.wait_for_deadline(1)
    assert_reverts(client, lambda: client.aggregate(1), "NoAcceptedUpdates")
    receipt_round = client.open_round()
    assert receipt_round == 2
    skipped = client.contract.events.RoundSkipped().get_logs(from_block=0)
    assert [log.args.round for log in skipped] == [1]
    assert client.contract.functions.rounds(1).call()[3] is True


def test_saturated_lanes_are_clamped_and_counted(node: ChainNode) -> None:
    rng = np.random.default_rng(4)
    client = deploy(node)
    client.register_worker(node.devices[0], 10)
    start = np.zeros(D, dtype=np.int64)
    start[0] = INT16_MAX
    client.publish_initial_model(start)
    client.open_round()
    update = rng.integers(1, 100, D)
    client.submit(node.devices[0], 1, update)
    client.wait_for_deadline(1)
    client.aggregate(1)
    model = client.global_model()
    assert model.saturated_lanes == 1
    assert model.values[0] == INT16_MAX
    assert model.values[1:].tolist() == update[1:].tolist()


# ------------------------------------------------------------------ bad input


def test_submission_errors_revert_without_state_change(node: ChainNode) -> None:
    rng = np.random.default_rng(5)
    client = ready(node, rng)
    dev = node.devices[0]
    fns = client.contract.functions
    update = rng.integers(-500, 500, D)
    norm = int(np.sqrt(norm_squared(update)))
    packed = pack_update(update)

    def raw_submit(
        round_: int = 1,
        data: bytes = packed,
        history: bytes = b"",
        hint: int = norm,
        sender: str = dev,
    ) -> object:
        return node.transact(fns.submit(round_, data, history, hint), sender=sender)

    assert_reverts(client, lambda: raw_submit(sender=node.servers[1]), "NotRegistered")
    assert_reverts(client, lambda: raw_submit(round_=2), "RoundNotOpen")
    assert_reverts(client, lambda: raw_submit(round_=0), "RoundNotOpen")
    args = assert_reverts(client, lambda: raw_submit(data=packed[:-32]), "WrongLength")
    assert args == (96, 64)
    padded = bytearray(packed)
    padded[64] = 1  # lane 15 of the last word: past num_params = 40
    assert_reverts(client, lambda: raw_submit(data=bytes(padded)), "NonZeroPadding")
    assert_reverts(client, lambda: raw_submit(hint=norm + 1), "WrongNormHint")
    assert_reverts(client, lambda: raw_submit(hint=2**255), "WrongNormHint")
    assert_reverts(client, lambda: raw_submit(history=bytes(192)), "WrongLength")
    with pytest.raises(ConfigError, match=r"update: value 40000 at index 3 is outside"):
        client.submit(dev, 1, np.where(np.arange(D) == 3, 40000, update))
    with pytest.raises(ConfigError, match="expected 40 values"):
        client.submit(dev, 1, update[:-1])

    assert client.submit(dev, 1, update).accepted
    assert_reverts(client, lambda: client.submit(dev, 1, update), "AlreadySubmitted")
    client.wait_for_deadline(1)
    other = node.devices[1]
    assert_reverts(client, lambda: client.submit(other, 1, update), "DeadlinePassed")
    client.aggregate(1)
    assert_reverts(client, lambda: client.submit(other, 1, update), "RoundNotOpen")  # closed
    client.open_round()
    wrong_history = pack_history(np.ones(D, dtype=np.int64))
    assert_reverts(client, lambda: raw_submit(round_=2, history=wrong_history), "HistoryMismatch")
    assert_reverts(client, lambda: raw_submit(round_=2, history=b""), "WrongLength")
    client.history(dev).values[0] += 1  # a corrupted local mirror is caught before sending
    with pytest.raises(TbcimError, match="history mirror"):
        client.submit(dev, 2, update)


def test_aggregation_errors_revert_without_state_change(node: ChainNode) -> None:
    rng = np.random.default_rng(6)
    client = ready(node, rng)
    fns = client.contract.functions
    es = client.server
    updates = {dev: rng.integers(-500, 500, D) for dev in node.devices[:2]}
    client.submit_round(1, updates)
    workers, packed = client.accepted_updates(1)
    prev = pack_update(client.global_model().values)

    def raw_aggregate(
        sender: str = es, w: list = workers, p: list = packed, g: bytes = prev
    ) -> object:
        return node.transact(fns.aggregate(1, g, w, p), sender=sender)

    assert_reverts(client, raw_aggregate, "DeadlineNotReached")
    client.wait_for_deadline(1)
    assert_reverts(client, lambda: raw_aggregate(sender=node.servers[1]), "NotServer")
    assert_reverts(client, lambda: raw_aggregate(w=workers[:1], p=packed[:1]), "WrongUpdateCount")
    assert_reverts(client, lambda: raw_aggregate(w=workers[::-1]), "UpdatesMismatch")
    tampered = [packed[0][:-1] + bytes([packed[0][-1] ^ 2]), packed[1]]
    assert_reverts(client, lambda: raw_aggregate(p=tampered), "UpdatesMismatch")
    assert_reverts(client, lambda: raw_aggregate(g=bytes(96)), "GlobalModelMismatch")
    assert_reverts(client, lambda: raw_aggregate(g=prev[:-32]), "WrongLength")
    raw_aggregate()
    assert_reverts(client, raw_aggregate, "RoundNotOpen")  # aggregating twice


def test_setup_errors_revert_without_state_change(node: ChainNode) -> None:
    client = deploy(node)
    dev, es, other_es = node.devices[0], client.server, node.servers[1]
    fns = client.contract.functions
    assert_reverts(client, client.open_round, "ModelNotPublished")
    client.register_worker(dev, 10)
    assert_reverts(client, lambda: client.register_worker(dev, 10), "AlreadyRegistered")
    assert_reverts(client, lambda: client.register_worker(node.devices[1], 0), "InvalidWorker")
    assert_reverts(
        client,
        lambda: node.transact(fns.registerWorker(node.devices[1], 5), sender=other_es),
        "NotServer",
    )
    assert_reverts(
        client, lambda: client.register_worker(node.devices[1], 2**48), "DataSizeTooLarge"
    )
    client.publish_initial_model(np.zeros(D, dtype=np.int64))
    assert_reverts(
        client, lambda: client.publish_initial_model(np.ones(D)), "ModelAlreadyPublished"
    )
    assert_reverts(client, lambda: node.transact(fns.openRound(), sender=dev), "NotServer")
    assert fns.server().call() == es


def test_history_capacity_is_enforced(node: ChainNode) -> None:
    rng = np.random.default_rng(7)
    client = ready(node, rng, max_history=1)
    assert client.contract.functions.maxHistory().call() == 1
    dev = node.devices[0]
    update = rng.integers(-500, 500, D)
    assert client.submit(dev, 1, update).accepted
    finish_round(client, 1)
    assert_reverts(client, lambda: client.submit(dev, 2, update), "HistoryFull")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, 12, 3, 0, 10**6, 2**14, 0), "numParams"),
        ((2**20 + 1, 12, 3, 0, 10**6, 2**14, 0), "numParams"),
        ((D, 16, 3, 0, 10**6, 2**14, 0), "fracBits"),
        ((D, 12, 0, 0, 10**6, 2**14, 0), "roundBlocks"),
        ((D, 12, 3, 10**6 + 1, 10**6, 2**14, 0), "epsilonPpm"),
        ((D, 12, 3, 0, 0, 2**14, 0), "normBoundPpm"),
        ((D, 12, 3, 0, 10**6, 2**24 + 1, 0), "unitScale"),
        ((D, 12, 3, 0, 10**6, 2**24, 128), "maxHistory"),
    ],
)
def test_constructor_rejects_bad_parameters(node: ChainNode, args: tuple, field: str) -> None:
    with pytest.raises(ContractRevert) as info:
        node.deploy("FLAggregator", *args, sender=node.servers[0])
    assert info.value.error_name == "InvalidParameter"
    assert info.value.error_args == (field,)


def test_config_errors_name_the_field() -> None:
    for kwargs, field in [
        ({"num_params": 0}, "num_params"),
        ({"num_params": 4, "epsilon": 1.5}, "epsilon"),
        ({"num_params": 4, "norm_bound": 0.0}, "norm_bound"),
        ({"num_params": 4, "unit_scale": 0}, "unit_scale"),
        ({"num_params": 4, "unit_scale": 2**24, "max_history": 128}, "max_history"),
        ({"num_params": 4, "round_blocks": 0}, "round_blocks"),
        ({"num_params": 4, "frac_bits": -1}, "frac_bits"),
    ]:
        with pytest.raises(ConfigError, match=f"^{field}:"):
            AggregatorConfig(**kwargs)


def test_reader_rejects_tampered_logs_and_calldata(node: ChainNode) -> None:
    client = deploy(node)
    with pytest.raises(TbcimError, match="no global model on chain for round None"):
        client.global_model()
    model = pack_update(np.arange(D))
    args = AttributeDict(
        {
            "round": 1,
            "model": model,
            "modelHash": keccak(model),
            "totalData": 5,
            "updates": 1,
            "saturatedLanes": 0,
        }
    )
    assert model_from_log(args, D, keccak(model)).values.tolist() == list(range(D))
    with pytest.raises(TbcimError, match="does not match the stored model hash"):
        model_from_log(args, D, bytes(32))
    forged = AttributeDict({**args, "model": pack_update(np.ones(D))})
    with pytest.raises(TbcimError, match="model bytes do not match their hash"):
        model_from_log(forged, D, None)
    assert checked_update(model, keccak(model)) == model
    with pytest.raises(TbcimError, match="update calldata does not match"):
        checked_update(model, bytes(32))


def test_mirror_with_wrong_parameters_is_detected(node: ChainNode) -> None:
    client = ready(node, np.random.default_rng(8))
    wrong = AggregatorClient(
        node, client.contract, AggregatorConfig(num_params=D, unit_scale=2**13)
    )
    with pytest.raises(TbcimError, match="diverged from the contract"):
        wrong.submit(node.devices[0], 1, np.arange(D) - 20)


def view_error(client: AggregatorClient, call: Callable[[], object]) -> tuple[str, tuple]:
    """The custom error a reverting view raises (eth-tester reports it as raw bytes)."""
    with pytest.raises(TransactionFailed) as info:
        call()
    prefix = "execution reverted: "
    message = str(info.value)
    raw = ast.literal_eval(message[message.index(prefix) + len(prefix) :])
    for item in client.contract.abi:
        if item["type"] == "error":
            types = [i["type"] for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            if raw[:4] == selector:
                return item["name"], tuple(decode(types, raw[4:]))
    raise AssertionError(f"unknown revert data {raw!r}")


def test_codec_views_reject_bad_input(node: ChainNode) -> None:
    client = deploy(node)
    f = client.contract.functions
    good = pack_update(np.zeros(D, dtype=np.int64))
    assert view_error(client, lambda: f.encodeUpdate([0] * (D - 1) + [2**15]).call()) == (
        "ValueOutOfRange",
        (D - 1, 2**15),
    )
    assert view_error(client, lambda: f.encodeUpdate([0] * 3).call()) == ("WrongLength", (D, 3))
    assert view_error(client, lambda: f.decodeUpdate(good[:-1]).call()) == ("WrongLength", (96, 95))
    assert view_error(client, lambda: f.decodeHistory(good).call()) == ("WrongLength", (192, 96))
    assert view_error(client, lambda: f.nextHistory(good, good).call())[0] == "WrongLength"
    assert view_error(client, lambda: f.fedAvg(good, [good], [1, 2]).call())[0] == "WrongLength"
    assert view_error(client, lambda: f.fedAvg(good, [good], [0]).call()) == (
        "InvalidParameter",
        ("weights",),
    )
    assert view_error(client, lambda: f.fedAvg(good, [], []).call()) == (
        "InvalidParameter",
        ("weights",),
    )
