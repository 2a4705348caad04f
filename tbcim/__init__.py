"""TBCIM: a two-level, blockchain-aided edge federated-learning service market.

Sub-packages, one job each:

- ``tbcim.lower``      section IV: EMD selection, data quality, ED costs, Stackelberg pricing.
- ``tbcim.auction``    section III: RANet (Algorithm 1), regret evaluation, optimal mechanisms.
- ``tbcim.matching``   the second paper's multi-buyer market (Opt, Subopt and baselines).
- ``tbcim.blockchain`` the market's view of the chain: fixed-point codec and contract clients.
- ``tbcim.cli``        the ``tbcim`` command.

The chain itself (node, compiler, block production, gas ledger) lives in ``chain_node``.
"""

__version__ = "0.1.0"
