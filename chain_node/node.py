"""ChainNode: the chain the ESs run, embedded (eth-tester + py-evm) or over JSON-RPC.

Both backends share one interface. Transactions are queued with :meth:`ChainNode.send` and
included by :meth:`ChainNode.mine`, which produces one block whose coinbase is the ES elected by
proof of stake (:mod:`chain_node.consensus`); :meth:`ChainNode.transact` does both for one call.
Every receipt's ``gasUsed`` goes to the :class:`~chain_node.gas_ledger.GasLedger`.

A call that would revert is caught at gas estimation and raised as
:class:`~chain_node.errors.ContractRevert` with the decoded custom error, so nothing is sent
and no state changes.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from eth_abi import decode as abi_decode
from eth_tester.exceptions import TransactionFailed
from eth_utils import ValidationError as EthValidationError
from eth_utils import (
    function_signature_to_4byte_selector,
    to_canonical_address,
    to_checksum_address,
)
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxParams, TxReceipt

from chain_node.compiler import ContractArtifact, compile_contracts
from chain_node.consensus import ProofOfStake
from chain_node.errors import ChainError, ContractRevert
from chain_node.gas_ledger import GasEntry, GasLedger

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

EMBEDDED_GAS_LIMIT = 60_000_000
TRANSFER_GAS = 21_000  # a plain ether transfer
ACCOUNT_BALANCE_WEI = 10**24
_STANDARD_ERRORS = {"Error": ["string"], "Panic": ["uint256"]}
#: The name of the web3 middleware layer that signs for :meth:`ChainNode.add_signers`' keys.
SIGNERS_LAYER = "tbcim_signers"
# web3 raises these for JSON-RPC nodes; the eth-tester provider raises its TransactionFailed.
_REVERTS = (ContractCustomError, ContractLogicError, ContractPanicError, TransactionFailed)


@dataclass
class _Pending:
    tx_hash: bytes
    contract: str
    function: str
    role: str
    round: int | None
    sender: str


def _revert_data(err: BaseException) -> bytes | None:
    """The revert payload of a failed estimate/call: web3 keeps it as hex in ``.data``,
    eth-tester as raw bytes in the args of an exception somewhere down the cause chain."""
    seen: BaseException | None = err
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        for arg in seen.args:
            if isinstance(arg, bytes):
                return arg
            if isinstance(arg, str) and "b'" in arg:  # eth-tester's eth_call: the bytes' repr
                with contextlib.suppress(ValueError, SyntaxError):
                    raw = ast.literal_eval(arg[arg.index("b'") :])
                    if isinstance(raw, bytes):
                        return raw
        seen = seen.__cause__ or seen.__context__
    return None


class _Miner:
    """How blocks are produced on a backend."""

    backend = "abstract"
    #: Whether a sent transaction executes at once into the open block (the embedded chain).
    applies_on_send = False

    def begin_block(self, coinbase: str) -> None:
        """Called once the next block's producer is known, before its transactions arrive."""

    def mine(self, coinbase: str) -> None:
        raise NotImplementedError


def _calldata_floor_gas(data: bytes) -> int:
    """EIP-7623 (Prague): a transaction pays at least 21000 + 10 gas per calldata token, with
    one token per zero byte and four per non-zero byte."""
    zeros = data.count(0)
    return 21_000 + 10 * (zeros + 4 * (len(data) - zeros))


def _single_pass_gas_estimate(state: Any, transaction: Any) -> int:
    """Gas limit from one execution instead of py-evm's ~20-step binary search.

    The transaction runs once at the block gas limit; the limit is its consumption·64/63
    (the reserve a nested call may need) plus a 10,000 margin, and at least the EIP-7623
    calldata floor. Reverts raise as with the binary search. The mined receipt's gasUsed is the
    measurement; the limit only has to suffice, and ``ChainNode.mine`` checks each status.
    """
    from eth.vm.spoof import SpoofTransaction

    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(
            SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
        )
    finally:
        state.revert(snapshot)
    if computation.is_error:
        raise computation.error
    consumed = transaction.intrinsic_gas + computation.get_gas_used()
    estimate = max(consumed * 64 // 63 + 10_000, _calldata_floor_gas(bytes(transaction.data)))
    return min(estimate, state.gas_limit)


def _fee_aware_backend_class() -> type:
    """py-evm backend whose default fee cap follows the base fee.

    eth-tester fills a missing ``maxFeePerGas`` with 1 gwei. Blocks more than half full raise
    the EIP-1559 base fee above that, after which every default-fee call, estimate and
    transaction is rejected. Here the default is 2 × base fee + tip, as wallets do.
    """
    from eth_tester import PyEVMBackend

    class FeeAwareBackend(PyEVMBackend):  # type: ignore[misc]
        def _normalize_transaction(self, transaction: Any, block_number: Any = "latest") -> Any:
            normalized = super()._normalize_transaction(transaction, block_number)
            fee_keys = ("max_fee_per_gas", "max_priority_fee_per_gas", "gas_price")
            if not any(key in transaction for key in fee_keys) and "max_fee_per_gas" in normalized:
                tip = normalized["max_priority_fee_per_gas"]
                normalized["max_fee_per_gas"] = 2 * self.get_base_fee(block_number) + tip
            return normalized

    return FeeAwareBackend


def _batching_tester_class() -> type:
    """eth-tester whose ``send_transaction`` applies a transaction once, to the pending block.

    eth-tester's own manual mining (auto-mine off) executes every transaction twice: at send, in
    a snapshot it then discards, and again when the block is mined. Here each transaction goes
    straight into the pending block, and ``mine_blocks`` seals that block without re-executing
    it. ``auto_mine_transactions`` stays on so ``mine_blocks`` adds nothing else; nothing here
    mines by itself.
    """
    from eth_tester import EthereumTester

    class BatchingTester(EthereumTester):  # type: ignore[misc]
        def send_transaction(self, transaction: Any) -> Any:
            return self._add_transaction_to_pending_block(transaction)

    return BatchingTester


class _EthTesterMiner(_Miner):
    backend = "py-evm"
    applies_on_send = True

    def __init__(self, tester: Any) -> None:
        self.tester = tester
        # py-evm's chain stores its estimator on the instance; this node's chain only.
        tester.backend.chain.gas_estimator = _single_pass_gas_estimate

    def begin_block(self, coinbase: str) -> None:
        # Transactions execute on the pending header, so its coinbase must be the producer's
        # before the first one lands: fees go to the producer and the sealed block re-imports.
        chain = self.tester.backend.chain
        chain.header = chain.header.copy(coinbase=to_canonical_address(coinbase))

    def mine(self, coinbase: str) -> None:
        self.tester.mine_blocks(num_blocks=1, coinbase=coinbase)

    def open_block_header(self) -> Any:
        """The open block's header: it fixes the block's state and transactions so far."""
        return self.tester.backend.chain.header

    def restore_open_block(self, header: Any) -> None:
        """Take back every transaction applied to the open block since ``header``."""
        self.tester.backend.chain.header = header

    def last_transaction_succeeded(self) -> bool:
        chain = self.tester.backend.chain
        receipts = chain.get_block().get_receipts(chain.chaindb)
        return bool(receipts) and receipts[-1].state_root == b"\x01"  # EIP-658 status


class _RpcMiner(_Miner):
    """Anvil/Hardhat-style manual mining; plain nodes mine on their own (coinbase is theirs)."""

    backend = "rpc"

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.manual = self._try("evm_setAutomine", [False])

    def _try(self, method: str, params: list[Any]) -> bool:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        return "error" not in response

    def mine(self, coinbase: str) -> None:
        if self.manual:
            self._try("anvil_setCoinbase", [coinbase])
            self._try("evm_mine", [])


class _NoMiner(_Miner):
    """A view of an RPC node that never produces blocks (someone else mines)."""

    backend = "rpc"

    def mine(self, coinbase: str) -> None:
        raise ChainError("this view of the node does not mine; the block producer does")


class ChainNode:
    """A chain run by ``n_servers`` ESs, with a requester and ``n_devices`` ED accounts."""

    def __init__(
        self,
        w3: Web3,
        miner: _Miner,
        accounts: Sequence[str],
        *,
        n_servers: int,
        n_devices: int,
        revenues: Sequence[float] | None = None,
        seed: int = 0,
    ) -> None:
        needed = 1 + n_servers + n_devices
        if n_servers < 1 or n_devices < 0:
            raise ChainError("need at least one ES and a non-negative number of EDs")
        if len(accounts) < needed:
            raise ChainError(f"the node has {len(accounts)} accounts, {needed} are needed")
        self.w3 = w3
        self._miner = miner
        self.requester = to_checksum_address(accounts[0])
        self.servers = [to_checksum_address(a) for a in accounts[1 : 1 + n_servers]]
        self.devices = [to_checksum_address(a) for a in accounts[1 + n_servers : needed]]
        self.pos = ProofOfStake(revenues if revenues is not None else [1.0] * n_servers, seed)
        self.ledger = GasLedger()
        self.producers: list[str] = []
        self._artifacts: dict[str, ContractArtifact] | None = None
        self._names: dict[str, str] = {}
        self._abis: dict[str, list[dict[str, Any]]] = {}
        self._errors: dict[bytes, tuple[str, list[str]]] = {}
        self._pending: list[_Pending] = []
        #: Logs of the mined transactions to the contracts named by :meth:`keep_logs`.
        self.kept_logs: dict[str, list[Any]] = {}
        self._block_gas_limit = int(w3.eth.get_block("latest")["gasLimit"])
        self._unsealed_gas = 0
        self._signers: dict[str, LocalAccount] = {}
        self._elect_next_producer()

    # ------------------------------------------------------------------ construction
    @classmethod
    def embedded(
        cls,
        n_servers: int = 3,
        n_devices: int = 10,
        *,
        revenues: Sequence[float] | None = None,
        seed: int = 0,
        block_gas_limit: int = EMBEDDED_GAS_LIMIT,
    ) -> ChainNode:
        """An in-process eth-tester chain on py-evm, mined on demand."""
        from eth_tester import PyEVMBackend
        from web3.providers.eth_tester import EthereumTesterProvider

        n_accounts = 1 + n_servers + n_devices
        state = PyEVMBackend.generate_genesis_state(
            num_accounts=n_accounts, overrides={"balance": ACCOUNT_BALANCE_WEI}
        )
        params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": block_gas_limit})
        backend = _fee_aware_backend_class()(genesis_parameters=params, genesis_state=state)
        tester = _batching_tester_class()(backend=backend, auto_mine_transactions=True)
        w3 = Web3(EthereumTesterProvider(tester))
        return cls(
            w3,
            _EthTesterMiner(tester),
            tester.get_accounts(),
            n_servers=n_servers,
            n_devices=n_devices,
            revenues=revenues,
            seed=seed,
        )

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        n_servers: int = 3,
        n_devices: int = 10,
        *,
        revenues: Sequence[float] | None = None,
        seed: int = 0,
        timeout: float = 30.0,
        accounts: Sequence[str] | None = None,
        mining: bool = True,
        device_keys: Sequence[LocalAccount] | None = None,
    ) -> ChainNode:
        """Any Ethereum JSON-RPC endpoint whose node holds unlocked, funded accounts.

        ``accounts`` (requester, ESs, EDs) replaces the node's own list, and ``mining=False``
        leaves block production to others: the view of a participant that only reads the
        chain and sends transactions it signs itself (an ED in a worker process,
        :meth:`send_signed`). With ``device_keys`` the EDs are the accounts of these keys (one
        per ED, ``n_devices`` of them), whose transactions the node signs itself
        (:meth:`add_signers`); the requester and the ESs stay the first accounts."""
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        if not w3.is_connected():
            raise ChainError(f"no Ethereum JSON-RPC node answers at {rpc_url}")
        listed = list(w3.eth.accounts if accounts is None else accounts)
        if device_keys is not None:
            if len(device_keys) != n_devices:
                raise ChainError(f"{len(device_keys)} device keys given for {n_devices} EDs")
            listed = [*listed[: 1 + n_servers], *(k.address for k in device_keys)]
        node = cls(
            w3,
            _RpcMiner(w3) if mining else _NoMiner(),
            listed,
            n_servers=n_servers,
            n_devices=n_devices,
            revenues=revenues,
            seed=seed,
        )
        if device_keys:
            node.add_signers(device_keys)
        return node

    def add_signers(self, keys: Sequence[LocalAccount]) -> None:
        """Send from the accounts of ``keys`` too, keys the node itself does not hold (e.g. the
        EDs' own, :func:`tbcim.fl.flower.spec.ed_account`): web3's signing middleware
        (``SignAndSendRawMiddlewareBuilder``) signs each transaction from one of them here and
        sends it raw, so :meth:`send`, :meth:`transact` and :meth:`deploy` take them as
        senders like the node's unlocked accounts. JSON-RPC nodes only: the embedded chain
        signs with the keys it generated."""
        from web3.middleware import SignAndSendRawMiddlewareBuilder

        if self._miner.applies_on_send:
            raise ChainError(
                "the embedded chain signs only for its own accounts; signers need a JSON-RPC node"
            )
        self._signers.update({to_checksum_address(k.address): k for k in keys})
        onion = self.w3.middleware_onion
        if SIGNERS_LAYER in onion:
            onion.remove(SIGNERS_LAYER)
        signing = SignAndSendRawMiddlewareBuilder.build(list(self._signers.values()))
        onion.inject(signing, name=SIGNERS_LAYER, layer=0)

    def _elect_next_producer(self) -> None:
        """Proof of stake picks the next block's producer (its coinbase) in advance."""
        self._next_producer = self.servers[self.pos.elect()]
        self._miner.begin_block(self._next_producer)

    def set_stakes(self, revenues: Sequence[float]) -> None:
        """New proof-of-stake stakes (revenue shares; 0 takes an ES out of the election, as a
        failed ES produces no blocks). The open block's producer is elected again if it holds
        no transaction yet."""
        self.pos.update_revenues(revenues)
        if not self._pending:
            self._elect_next_producer()

    # ------------------------------------------------------------------ properties
    @property
    def backend(self) -> str:
        return self._miner.backend

    @property
    def rpc_url(self) -> str | None:
        """The JSON-RPC endpoint this node was reached through (None when embedded)."""
        uri = getattr(self.w3.provider, "endpoint_uri", None)
        return None if uri is None else str(uri)

    @property
    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    @property
    def block_gas_limit(self) -> int:
        """The gas limit of this chain's blocks (60M embedded; anvil's --gas-limit)."""
        return self._block_gas_limit

    def role_of(self, address: str) -> str:
        if address == self.requester:
            return "requester"
        if address in self.servers:
            return "es"
        if address in self.devices:
            return "ed"
        return "other"

    # ------------------------------------------------------------------ contracts
    def artifacts(self) -> dict[str, ContractArtifact]:
        if self._artifacts is None:
            self._artifacts = compile_contracts()
        return self._artifacts

    def use_artifacts(self, artifacts: dict[str, ContractArtifact]) -> None:
        """Deploy from these artifacts instead of ``contracts/`` (e.g. test contracts)."""
        self._artifacts = artifacts

    def _register_abi(self, name: str, address: str, abi: list[dict[str, Any]]) -> None:
        self._names[to_checksum_address(address)] = name
        self._abis[to_checksum_address(address)] = abi
        for item in abi:
            if item.get("type") == "error":
                types = [inp["type"] for inp in item.get("inputs", [])]
                signature = f"{item['name']}({','.join(types)})"
                self._errors[function_signature_to_4byte_selector(signature)] = (
                    item["name"],
                    types,
                )

    def deploy(self, name: str, *args: Any, sender: str, value: int = 0) -> Contract:
        """Deploy contract ``name`` (compiled from source), mining one block."""
        artifacts = self.artifacts()
        if name not in artifacts:
            raise ChainError(f"no compiled contract named {name!r} (have {sorted(artifacts)})")
        art = artifacts[name]
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        constructor = factory.constructor(*args)
        tx = cast(TxParams, {"from": sender, "value": value})
        self._register_abi(name, "0x" + "00" * 20, art.abi)  # decode constructor reverts
        self._queue(constructor, tx, name, "deploy", self.role_of(sender), None)
        receipt = self.mine()[-1]
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploying {name} produced no contract address")
        self._register_abi(name, address, art.abi)
        return cast(Contract, self.w3.eth.contract(address=address, abi=art.abi))

    def at(self, name: str, address: str) -> Contract:
        """Contract ``name`` (compiled from source) already deployed at ``address``, e.g. by
        another process; its reverts decode like those of :meth:`deploy`."""
        artifacts = self.artifacts()
        if name not in artifacts:
            raise ChainError(f"no compiled contract named {name!r} (have {sorted(artifacts)})")
        abi = artifacts[name].abi
        self._register_abi(name, address, abi)
        return cast(Contract, self.w3.eth.contract(address=to_checksum_address(address), abi=abi))

    def contract_name(self, address: str) -> str:
        return self._names.get(to_checksum_address(address), address)

    # ------------------------------------------------------------------ transactions
    def _decode_revert(self, contract: str, function: str, err: BaseException) -> ContractRevert:
        raw = _revert_data(err)
        if raw is not None and len(raw) >= 4:
            selector, body = raw[:4], raw[4:]
            known = dict(self._errors)
            for std, types in _STANDARD_ERRORS.items():
                known[function_signature_to_4byte_selector(f"{std}({types[0]})")] = (std, types)
            if selector in known:
                error_name, types = known[selector]
                return ContractRevert(
                    contract, function, error_name, tuple(abi_decode(types, body))
                )
        return ContractRevert(contract, function, "Revert", (str(err),))

    def send(
        self,
        fn: ContractFunction,
        *,
        sender: str,
        role: str | None = None,
        round: int | None = None,
        value: int = 0,
    ) -> bytes:
        """Queue ``fn`` from ``sender`` for the open block; a revert raises ContractRevert and
        leaves no trace."""
        tx = cast(TxParams, {"from": sender, "value": value})
        contract = self.contract_name(fn.address)
        return self._queue(fn, tx, contract, fn.fn_name, role or self.role_of(sender), round)

    def _queue(
        self, call: Any, tx: TxParams, contract: str, function: str, role: str, round: int | None
    ) -> bytes:
        """Send ``call`` (a contract function or constructor) for the open block and remember
        it for :meth:`mine`. A transaction that would revert raises ContractRevert and leaves
        no trace in the open block."""
        if self._miner.applies_on_send:
            tx_hash = self._apply_once(call, tx, contract, function)
        else:
            try:
                gas = call.estimate_gas(tx)
            except _REVERTS as err:
                raise self._decode_revert(contract, function, err) from err
            sent = self._with_gas_and_nonce(tx, gas)
            tx_hash = self._transact_rpc(call, sent, contract, function)
        self._pending.append(_Pending(tx_hash, contract, function, role, round, str(tx["from"])))
        return tx_hash

    def _transact_rpc(self, call: Any, tx: TxParams, contract: str, function: str) -> bytes:
        """Send ``call`` through the JSON-RPC node; a sender that neither the node nor
        :meth:`add_signers` holds a key for is a :class:`ChainError` naming it."""
        try:
            return bytes(call.transact(tx))
        except Web3RPCError as err:
            sender = to_checksum_address(tx["from"])
            if sender in self._signers or sender in self.w3.eth.accounts:
                raise
            raise ChainError(
                f"cannot send {contract}.{function} from {sender}: neither the node nor its "
                f"signers hold that account's key (give it with ChainNode.add_signers); the "
                f"node said: {err.message}"
            ) from err

    def _apply_once(self, call: Any, tx: TxParams, contract: str, function: str) -> bytes:
        """Embedded chain: execute once, straight into the open block, with the block's
        remaining gas as the limit (no separate gas estimate; gasUsed comes from the receipt).
        A failed transaction is taken back out of the open block; its revert is then decoded
        by re-estimating, and a transaction that only ran out of room in a partly filled block
        is retried in a fresh one."""
        miner = cast(_EthTesterMiner, self._miner)
        for fresh_block in (False, True):
            before = miner.open_block_header()
            remaining = int(before.gas_limit - before.gas_used)
            params = {**tx, **self._nonce(tx), "gas": remaining}
            try:
                tx_hash = call.transact(cast(TxParams, params))
                if miner.last_transaction_succeeded():
                    return bytes(tx_hash)
            except EthValidationError:  # the block's remaining gas is below intrinsic gas
                pass
            miner.restore_open_block(before)
            try:  # re-run without the block's limit: a revert raises, lack of room does not
                call.estimate_gas(tx)
            except _REVERTS as err:
                raise self._decode_revert(contract, function, err) from err
            if fresh_block or before.gas_used == 0:
                break
            self._seal_block()  # it reverts only for lack of gas: give it a block of its own
        raise ContractRevert(contract, function, "OutOfGas", (remaining,))

    def _with_gas_and_nonce(self, tx: TxParams, estimate: int) -> TxParams:
        """JSON-RPC path: the estimate-based gas limit (see :meth:`_fit_in_block`) and nonce."""
        limit = self._fit_in_block(estimate)
        return cast(TxParams, {**tx, **self._nonce(tx), "gas": limit})

    def _nonce(self, tx: TxParams) -> dict[str, int]:
        """The nonce counted over the pending block: one sender may queue several
        transactions per block."""
        sender = to_checksum_address(tx["from"])
        return {"nonce": self.w3.eth.get_transaction_count(sender, "pending")}

    def _fit_in_block(self, estimate: int) -> int:
        """The gas limit for a queued transaction (estimate + 20 %, at most a block). When the
        open block cannot take it, that block is sealed first: a round may span blocks."""
        limit = min(estimate + estimate // 5, self._block_gas_limit)
        if self._unsealed_gas + limit > self._block_gas_limit:
            self._seal_block()
        self._unsealed_gas += limit
        return limit

    def _seal_block(self) -> None:
        """Mine the open block with the elected producer as coinbase; elect the next one."""
        self._miner.mine(self._next_producer)
        self.producers.append(self._next_producer)
        self._unsealed_gas = 0
        self._elect_next_producer()

    def mine(self) -> list[TxReceipt]:
        """Seal the open block and return the receipts of every transaction queued since the
        last ``mine`` (one block, or more when they did not fit); record each receipt's gas."""
        self._seal_block()
        pending, self._pending = self._pending, []
        receipts = []
        miners: dict[int, str] = {}  # block number → its coinbase, read once per block
        for p in pending:
            receipt = self.w3.eth.wait_for_transaction_receipt(HexBytes(p.tx_hash), timeout=120)
            self._record(p, receipt, miners)
            if receipt["status"] != 1:
                raise ContractRevert(p.contract, p.function, "TransactionFailed", (p.tx_hash,))
            receipts.append(receipt)
        return receipts

    def _record(self, p: _Pending, receipt: TxReceipt, miners: dict[int, str]) -> None:
        """Put a mined transaction's gas in the ledger (and its logs in ``kept_logs``)."""
        number = int(receipt["blockNumber"])
        if number not in miners:
            miners[number] = to_checksum_address(self.w3.eth.get_block(number)["miner"])
        self.ledger.record(
            GasEntry(
                contract=p.contract,
                function=p.function,
                role=p.role,
                round=p.round,
                sender=p.sender,
                gas_used=int(receipt["gasUsed"]),
                tx_hash=receipt["transactionHash"].to_0x_hex(),
                block=number,
                producer=miners[number],
            )
        )
        if p.contract in self.kept_logs:
            self.kept_logs[p.contract].extend(receipt["logs"])

    def _mine_until(self, tx_hashes: Sequence[str], max_blocks: int) -> list[TxReceipt]:
        """Mine blocks until every transaction of ``tx_hashes`` is in one (at most
        ``max_blocks``); their receipts in block order."""
        if self._pending:
            raise ChainError("transactions are queued; mine() them first")
        missing = [HexBytes(h) for h in tx_hashes]
        found: list[TxReceipt] = []
        for _ in range(max_blocks):
            if not missing:
                break
            self._seal_block()
            still = []
            for h in missing:
                try:
                    found.append(self.w3.eth.get_transaction_receipt(h))
                except TransactionNotFound:
                    still.append(h)
            missing = still
        if missing:
            raise ChainError(
                f"{len(missing)} transaction(s) not mined within {max_blocks} blocks, "
                f"first {missing[0].to_0x_hex()}"
            )
        return sorted(found, key=lambda r: (int(r["blockNumber"]), int(r["transactionIndex"])))

    def include(
        self, tx_hashes: Sequence[str], *, role: str, round: int | None, max_blocks: int
    ) -> list[TxReceipt]:
        """Mine blocks until every transaction of ``tx_hashes`` (signed and sent by others,
        e.g. EDs in worker processes: :meth:`send_signed`) is in one, at most ``max_blocks``,
        and record their gas in the ledger like this node's own. Returns the receipts in block
        order (a failed one is recorded and returned: its sender learns why from the chain).
        A transaction still missing after ``max_blocks`` raises :class:`ChainError`."""
        found = self._mine_until(tx_hashes, max_blocks)
        miners: dict[int, str] = {}
        for receipt in found:
            tx = self.w3.eth.get_transaction(receipt["transactionHash"])
            to = to_checksum_address(str(tx["to"]))
            contract = self.w3.eth.contract(address=to, abi=self._abis.get(to, []))
            try:
                function = contract.decode_function_input(tx["input"])[0].fn_name
            except ValueError:
                function = "unknown"
            sender = to_checksum_address(tx["from"])
            entry = _Pending(
                bytes(receipt["transactionHash"]),
                self.contract_name(to),
                function,
                role,
                round,
                sender,
            )
            self._record(entry, receipt, miners)
        return found

    def send_signed(self, fn: ContractFunction, key: LocalAccount, gas: int | None = None) -> str:
        """Sign ``fn`` with ``key`` (an account whose key lives outside the node, e.g. an ED's
        own) and send it to the node's pool. It is not queued for :meth:`mine`: the block
        producer includes it (:meth:`include`). The nonce is the account's pending count, so
        one sender may send several in a row. A call that would revert raises ContractRevert
        before anything is sent; with ``gas`` given (a bound, for a transaction that depends on
        an earlier one still in the pool) it is sent unestimated. Returns the transaction hash
        (0x hex)."""
        tx = cast(TxParams, {"from": key.address})
        if gas is None:
            try:
                estimate = fn.estimate_gas(tx)
            except _REVERTS as err:
                raise self._decode_revert(self.contract_name(fn.address), fn.fn_name, err) from err
            gas = estimate + estimate // 5
        limit = min(gas, self._block_gas_limit)
        params = cast(TxParams, {**tx, **self._nonce(tx), "gas": limit})
        signed = key.sign_transaction(cast(Any, fn.build_transaction(params)))
        return str(self.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex())

    def fund(self, addresses: Sequence[str], wei: int) -> None:
        """Send ``wei`` from the requester to each of ``addresses`` (accounts whose keys live
        outside the node, e.g. the EDs' own) and mine the transfers; setup, not in the
        ledger. Refused before any transfer if the requester cannot pay them all."""
        need = wei * len(addresses) + TRANSFER_GAS * len(addresses) * int(self.w3.eth.gas_price)
        have = int(self.w3.eth.get_balance(self.requester))
        if need > have:
            raise ChainError(
                f"funding {len(addresses)} accounts with {wei / 10**18} ether each needs "
                f"{need / 10**18} ether with the transfers' gas; the requester {self.requester} "
                f"holds {have / 10**18} (give the node's accounts more, e.g. anvil --balance)"
            )
        hashes = []
        for address in addresses:
            tx = cast(TxParams, {"from": self.requester, "to": address, "value": wei})
            sent = self.w3.eth.send_transaction(cast(TxParams, {**tx, **self._nonce(tx)}))
            hashes.append(sent.to_0x_hex())
        self._mine_until(hashes, max_blocks=len(hashes) + 1)

    def keep_logs(self, contract: str) -> None:
        """Keep the logs of every transaction to ``contract`` (a name) mined from now on in
        ``kept_logs[contract]``: reading them back later through eth-tester's ``get_logs``
        re-reads every block of the range, and each receipt by a scan from the head."""
        self.kept_logs.setdefault(contract, [])

    def transact(
        self,
        fn: ContractFunction,
        *,
        sender: str,
        role: str | None = None,
        round: int | None = None,
        value: int = 0,
    ) -> TxReceipt:
        """Send ``fn`` and mine it in its own block; returns the receipt."""
        if self._pending:
            raise ChainError("transactions are queued; mine() them before transact()")
        self.send(fn, sender=sender, role=role, round=round, value=value)
        return self.mine()[0]

    def call(self, fn: ContractFunction, *, sender: str | None = None) -> Any:
        """eth_call against the latest block; reverts raise ContractRevert."""
        try:
            return fn.call({"from": sender} if sender else {})
        except _REVERTS as err:
            raise self._decode_revert(self.contract_name(fn.address), fn.fn_name, err) from err

    def advance_blocks(self, n: int) -> None:
        """Mine ``n`` empty blocks (to pass a deadline τ)."""
        if self._pending:
            raise ChainError("transactions are queued; mine() them before advancing")
        for _ in range(n):
            self.mine()
