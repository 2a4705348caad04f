"""The chain the edge servers run (TBCIM section II-A, Fig. 3).

- ``compiler``   Solidity compilation from source with py-solc-x (native solc or pinned npm solc).
- ``node``       ChainNode: an embedded eth-tester/py-evm chain or any JSON-RPC endpoint.
- ``consensus``  the paper's proof-of-stake producer election (revenue shares as stakes).
- ``gas_ledger`` gasUsed of every receipt, by contract, function, sender role and round.
"""
